//! `fedagg._fedagg`: the Rust SDK (`fedagg-client`) as a Python extension module, the native
//! half of the `fedagg` Python package.
//!
//! Its surface is deliberately narrow: vectors cross as little-endian float32 `bytes` and
//! structured answers as JSON text, and the pure-Python half (`python/fedagg/__init__.py`) turns
//! them into numpy arrays and dicts. That keeps this module within the stable ABI (abi3: one
//! wheel for every CPython from 3.9 on) without a numpy build dependency. Every call that waits
//! on the network or computes crypto releases the GIL; errors become the package's exception
//! classes (`fedagg.errors`), which carry the server's error kind.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use fedagg_api::{Role, RoundMetrics};
use fedagg_client::{Contribute, Outcome, Transport};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// One runtime for the process: the SDK's futures run on it while the calling Python thread
/// waits without the GIL.
fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<std::io::Result<tokio::runtime::Runtime>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fedagg")
            .enable_all()
            .build()
    })
    .as_ref()
    .map_err(|e| PyValueError::new_err(format!("starting the runtime: {e}")))
}

/// Run `f` on the runtime with the GIL released; map the SDK's error to the package's
/// exception.
fn block<T: Send>(
    py: Python<'_>,
    f: impl std::future::Future<Output = fedagg_client::Result<T>> + Send,
) -> PyResult<T> {
    let rt = runtime()?;
    py.detach(|| rt.block_on(f)).map_err(|e| to_py(py, e))
}

/// The SDK's error as an instance of `fedagg.errors`' class for its kind.
fn to_py(py: Python<'_>, e: fedagg_client::Error) -> PyErr {
    use fedagg_client::Error as E;
    let message = e.to_string();
    let made = (|| -> PyResult<PyErr> {
        let errors = py.import("fedagg.errors")?;
        let instance = match e {
            E::Api {
                status,
                error,
                detail,
            } => errors
                .getattr("ApiError")?
                .call1((message, status, error, detail))?,
            E::Round { round, reason } => errors
                .getattr("RoundError")?
                .call1((message, round, reason))?,
            other => {
                let class = match other {
                    E::Transport(_) => "TransportError",
                    E::Tls(_) => "TlsError",
                    E::Untrusted(_) => "UntrustedError",
                    E::Timeout(_) => "Timeout",
                    _ => "ProtocolError",
                };
                errors.getattr(class)?.call1((message,))?
            }
        };
        Ok(PyErr::from_value(instance))
    })();
    made.unwrap_or_else(|err| err)
}

fn transport(ca_file: Option<PathBuf>) -> Transport {
    Transport {
        ca_file,
        ..Transport::default()
    }
}

fn json<T: serde::Serialize>(v: &T) -> PyResult<String> {
    serde_json::to_string(v).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// Little-endian float32 bytes as values.
fn f32s(bytes: &[u8]) -> PyResult<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return Err(PyValueError::new_err(
            "a vector's bytes must be a whole number of float32 values",
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn f32_bytes<'py>(py: Python<'py>, values: &[f32]) -> Bound<'py, PyBytes> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    PyBytes::new(py, &bytes)
}

fn outcome_json(o: &Outcome) -> PyResult<String> {
    json(&serde_json::json!({
        "round": o.round,
        "status": o.status,
        "record": o.record,
    }))
}

fn seconds(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    timeout
        .map(|s| {
            Duration::try_from_secs_f64(s)
                .map_err(|e| PyValueError::new_err(format!("timeout {s}: {e}")))
        })
        .transpose()
}

/// A participant of one federation.
#[pyclass(frozen, module = "fedagg._fedagg")]
struct Client {
    inner: fedagg_client::Client,
}

#[pymethods]
impl Client {
    /// Redeem an enrollment bundle; save the credentials to `credentials` (a new file, mode
    /// 0600) when given.
    #[staticmethod]
    #[pyo3(signature = (url, code, credentials=None, ca_file=None))]
    fn enroll(
        py: Python<'_>,
        url: &str,
        code: &str,
        credentials: Option<PathBuf>,
        ca_file: Option<PathBuf>,
    ) -> PyResult<Self> {
        // Refuse before redeeming the single-use code: credentials that could not be saved
        // afterwards would be lost with it.
        if let Some(path) = credentials.as_ref().filter(|p| p.exists()) {
            return Err(PyValueError::new_err(format!(
                "{} already exists: the code was not redeemed",
                path.display()
            )));
        }
        let t = transport(ca_file);
        let (inner, _) = block(py, fedagg_client::Client::enroll_with(url, code, &t))?;
        if let Some(path) = credentials {
            inner.save_credentials(&path).map_err(|e| to_py(py, e))?;
        }
        Ok(Client { inner })
    }

    /// A client from a credentials file written at enrollment.
    #[staticmethod]
    #[pyo3(signature = (credentials, ca_file=None))]
    fn connect(py: Python<'_>, credentials: PathBuf, ca_file: Option<PathBuf>) -> PyResult<Self> {
        fedagg_client::Client::load_credentials(&credentials, &transport(ca_file))
            .map(|inner| Client { inner })
            .map_err(|e| to_py(py, e))
    }

    /// Write the credentials to a new file of mode 0600.
    fn save_credentials(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        self.inner.save_credentials(&path).map_err(|e| to_py(py, e))
    }

    #[getter]
    fn participant_id(&self) -> i64 {
        self.inner.participant_id()
    }

    #[getter]
    fn federation_id(&self) -> i64 {
        self.inner.federation_id()
    }

    /// The federation as JSON, checked against what was pinned.
    fn federation_json(&self, py: Python<'_>) -> PyResult<String> {
        let fed = block(py, self.inner.federation())?;
        json(&fed)
    }

    /// The current model: its version and its values as float32 bytes.
    fn model_bytes<'py>(&self, py: Python<'py>) -> PyResult<(u64, Bound<'py, PyBytes>)> {
        let (version, values) = block(py, self.inner.model())?;
        Ok((version, f32_bytes(py, &values)))
    }

    /// The next round numbered above `after` (long polling up to `wait` seconds) as JSON, with
    /// `member` set when this client is in its cohort; `None` when none came.
    #[pyo3(signature = (after, wait=30.0))]
    fn next_round_json(&self, py: Python<'_>, after: u64, wait: f64) -> PyResult<Option<String>> {
        let wait = seconds(Some(wait))?.unwrap_or_default();
        block(py, self.inner.next_round(after, wait))?
            .map(|info| json(&info))
            .transpose()
    }

    /// SCAFFOLD's server control variate stored with model `version`, as float32 bytes.
    fn server_controls_bytes<'py>(
        &self,
        py: Python<'py>,
        version: u64,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let values = block(py, self.inner.server_controls(version))?;
        Ok(f32_bytes(py, &values))
    }

    /// Contribute float32 `update` bytes with `weight` (and, under SCAFFOLD, the control
    /// delta's bytes) to the next round this client is in; the outcome as JSON.
    #[pyo3(signature = (update, weight, timeout=None, control_delta=None))]
    fn contribute_bytes(
        &self,
        py: Python<'_>,
        update: &[u8],
        weight: u64,
        timeout: Option<f64>,
        control_delta: Option<&[u8]>,
    ) -> PyResult<String> {
        let update = f32s(update)?;
        let opts = Contribute {
            timeout: seconds(timeout)?,
            control_delta: control_delta.map(f32s).transpose()?,
            ..Contribute::default()
        };
        let o = block(py, self.inner.contribute_with(&update, weight, opts))?;
        outcome_json(&o)
    }
}

/// A participant's SCAFFOLD control variate `c_i`, kept in a file.
#[pyclass(frozen, module = "fedagg._fedagg")]
struct LocalControls {
    inner: fedagg_client::LocalControls,
}

#[pymethods]
impl LocalControls {
    #[new]
    fn new(path: PathBuf, federation_id: i64, length: usize) -> Self {
        LocalControls {
            inner: fedagg_client::LocalControls::new(path, federation_id, length),
        }
    }

    /// `c_i` as float32 bytes: zeros when the file does not exist.
    fn load_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let values = self.inner.load().map_err(|e| to_py(py, e))?;
        Ok(f32_bytes(py, &values))
    }

    /// Store `c_i` (float32 bytes) durably.
    fn save_bytes(&self, py: Python<'_>, values: &[u8]) -> PyResult<()> {
        self.inner.save(&f32s(values)?).map_err(|e| to_py(py, e))
    }
}

/// The key holder of a Paillier federation.
#[pyclass(frozen, module = "fedagg._fedagg")]
struct KeyHolder {
    inner: fedagg_client::KeyHolder,
}

#[pymethods]
impl KeyHolder {
    /// A key holder from its credentials and its key file (`paillier.key`, or a holder's share
    /// of a threshold key); `memory` keeps the sum decrypted in each round across restarts.
    #[new]
    #[pyo3(signature = (credentials, key_file, memory=None, unverified=false, ca_file=None))]
    fn new(
        py: Python<'_>,
        credentials: PathBuf,
        key_file: PathBuf,
        memory: Option<PathBuf>,
        unverified: bool,
        ca_file: Option<PathBuf>,
    ) -> PyResult<Self> {
        let client = fedagg_client::Client::load_credentials(&credentials, &transport(ca_file))
            .map_err(|e| to_py(py, e))?;
        let kh =
            fedagg_client::KeyHolder::from_key_file(client, &key_file).map_err(|e| to_py(py, e))?;
        let kh = if unverified { kh.unverified() } else { kh };
        let inner = match memory {
            Some(path) => kh.remember_in(&path).map_err(|e| to_py(py, e))?,
            None => kh,
        };
        Ok(KeyHolder { inner })
    }

    /// Publish the public key unless the federation has it already; `True` when published.
    fn publish(&self, py: Python<'_>) -> PyResult<bool> {
        block(py, self.inner.publish_unless_published())
    }

    /// Wait for `round`'s decrypt phase, check and decrypt its sum; the outcome as JSON.
    #[pyo3(signature = (round, timeout=3600.0))]
    fn decrypt_round(&self, py: Python<'_>, round: u64, timeout: f64) -> PyResult<String> {
        let timeout = seconds(Some(timeout))?.unwrap_or_default();
        let o = block(py, self.inner.decrypt_round(round, timeout))?;
        outcome_json(&o)
    }
}

/// The operator's side.
#[pyclass(frozen, module = "fedagg._fedagg")]
struct Admin {
    inner: fedagg_client::Admin,
}

#[pymethods]
impl Admin {
    #[new]
    #[pyo3(signature = (url, token, ca_file=None))]
    fn new(py: Python<'_>, url: &str, token: &str, ca_file: Option<PathBuf>) -> PyResult<Self> {
        fedagg_client::Admin::with_transport(url, token, &transport(ca_file))
            .map(|inner| Admin { inner })
            .map_err(|e| to_py(py, e))
    }

    /// Create a federation from its spec (JSON); the federation as JSON.
    fn create_federation_json(&self, py: Python<'_>, spec: &str) -> PyResult<String> {
        let spec: fedagg_api::FederationSpec = serde_json::from_str(spec)
            .map_err(|e| PyValueError::new_err(format!("the federation spec: {e}")))?;
        json(&block(py, self.inner.create_federation(&spec))?)
    }

    fn federation_json(&self, py: Python<'_>, id: i64) -> PyResult<String> {
        json(&block(py, self.inner.federation(id))?)
    }

    fn federations_json(&self, py: Python<'_>) -> PyResult<String> {
        json(&block(py, self.inner.federations())?)
    }

    /// A single-use enrollment bundle for a participant or key holder.
    #[pyo3(signature = (id, role="participant", label=None))]
    fn enrollment_code(
        &self,
        py: Python<'_>,
        id: i64,
        role: &str,
        label: Option<&str>,
    ) -> PyResult<String> {
        let role = match role {
            "participant" => Role::Participant,
            "key_holder" | "key-holder" => Role::KeyHolder,
            other => {
                return Err(PyValueError::new_err(format!(
                    "role {other:?}: participant or key_holder"
                )))
            }
        };
        let code = block(py, self.inner.enrollment_code_labelled(id, role, label))?;
        Ok(code.bundle)
    }

    /// Set the server optimizer (JSON, the API's `ServerOptimizer`), between rounds.
    fn set_server_optimizer_json(&self, py: Python<'_>, id: i64, optimizer: &str) -> PyResult<()> {
        let opt: fedagg_api::ServerOptimizer = serde_json::from_str(optimizer)
            .map_err(|e| PyValueError::new_err(format!("the server optimizer: {e}")))?;
        block(py, self.inner.set_server_optimizer(id, &opt))
    }

    /// Set the initial model (float32 bytes), before the first round.
    fn set_initial_model(&self, py: Python<'_>, id: i64, model: &[u8]) -> PyResult<()> {
        let model = f32s(model)?;
        block(py, self.inner.set_initial_model(id, &model))
    }

    fn open_round_json(&self, py: Python<'_>, id: i64) -> PyResult<String> {
        json(&block(py, self.inner.open_round(id))?)
    }

    fn round_json(&self, py: Python<'_>, id: i64, round: u64) -> PyResult<String> {
        json(&block(
            py,
            self.inner.round(id, round, None, Duration::ZERO),
        )?)
    }

    #[pyo3(signature = (id, round, timeout=3600.0))]
    fn wait_round_json(
        &self,
        py: Python<'_>,
        id: i64,
        round: u64,
        timeout: f64,
    ) -> PyResult<String> {
        let timeout = seconds(Some(timeout))?.unwrap_or_default();
        json(&block(py, self.inner.wait_round(id, round, timeout))?)
    }

    fn rounds_json(&self, py: Python<'_>, id: i64, limit: u32) -> PyResult<String> {
        json(&block(py, self.inner.rounds(id, None, limit))?)
    }

    fn model_bytes<'py>(
        &self,
        py: Python<'py>,
        id: i64,
        version: u64,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let values = block(py, self.inner.model(id, version))?;
        Ok(f32_bytes(py, &values))
    }

    #[pyo3(signature = (id, round, accuracy=None, loss=None))]
    fn report_metrics(
        &self,
        py: Python<'_>,
        id: i64,
        round: u64,
        accuracy: Option<f64>,
        loss: Option<f64>,
    ) -> PyResult<()> {
        let m = RoundMetrics { accuracy, loss };
        block(py, self.inner.report_metrics(id, round, &m))
    }

    /// Replace a member's token; the new token.
    fn rotate_token(&self, py: Python<'_>, id: i64, participant: i64) -> PyResult<String> {
        Ok(block(py, self.inner.rotate_token(id, participant))?.token)
    }
}

/// Bound the threads this process uses for its cryptography: SecAgg's key agreements and masking,
/// Paillier's and the lattice mode's encryption, and a key holder's Paillier decryption (1 until
/// set). What is sent is the same whatever the number.
#[pyfunction]
fn set_threads(n: usize) {
    fedagg_client::set_threads(n);
}

/// The server's URL and the enrollment bundle from an enrollment file (the SDK's parser).
#[pyfunction]
fn read_enrollment(path: PathBuf) -> PyResult<(String, String)> {
    let (url, code) =
        fedagg_client::read_enrollment(&path).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok((url, code.to_string()))
}

/// The module.
#[pymodule]
fn _fedagg(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(read_enrollment, m)?)?;
    m.add_function(wrap_pyfunction!(set_threads, m)?)?;
    m.add_class::<Client>()?;
    m.add_class::<KeyHolder>()?;
    m.add_class::<LocalControls>()?;
    m.add_class::<Admin>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
