//! Data sets: the bundled UCI sets, loaders for users' own CSV and IDX files, FedProx's
//! Synthetic(alpha, beta) federated data, splits and standardisation.

use std::io::Read;
use std::path::Path;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use rand_distr::{Distribution, LogNormal, Normal};

use crate::{Error, Result};

const DIGITS_GZ: &[u8] = include_bytes!("../data/digits.csv.gz");
const BREAST_CANCER: &str = include_str!("../data/breast_cancer.csv");

/// A classification data set held in memory: row-major `f32` features and `i64` labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// `len() * dim` feature values, one row per sample.
    pub features: Vec<f32>,
    /// One label in `0..classes` per sample.
    pub labels: Vec<i64>,
    /// Features per sample.
    pub dim: usize,
    /// Number of classes.
    pub classes: usize,
    /// Image shape `(channels, height, width)` when the features are pixels (for the CNN).
    pub image: Option<(usize, usize, usize)>,
}

impl Dataset {
    /// Build a data set, checking shapes and labels.
    pub fn new(features: Vec<f32>, labels: Vec<i64>, dim: usize, classes: usize) -> Result<Self> {
        if dim == 0 || features.len() != labels.len() * dim {
            return Err(Error::Data(format!(
                "{} feature values do not make {} rows of {dim}",
                features.len(),
                labels.len()
            )));
        }
        if let Some(bad) = labels.iter().find(|&&l| l < 0 || l as usize >= classes) {
            return Err(Error::Data(format!("label {bad} outside 0..{classes}")));
        }
        if features.iter().any(|v| !v.is_finite()) {
            return Err(Error::Data("a feature value is not finite".into()));
        }
        Ok(Dataset {
            features,
            labels,
            dim,
            classes,
            image: None,
        })
    }

    /// The UCI handwritten digits (1797 8x8 images, 10 classes), pixels scaled to `[0, 1]`.
    pub fn digits() -> Self {
        let mut text = String::new();
        // The bundled file is part of the binary: failing to read it is a build defect.
        #[allow(clippy::expect_used)]
        flate2::read::GzDecoder::new(DIGITS_GZ)
            .read_to_string(&mut text)
            .expect("bundled digits.csv.gz is valid gzip");
        #[allow(clippy::expect_used)]
        let mut d = parse_csv(&text, false, Some(10)).expect("bundled digits.csv is valid");
        d.features.iter_mut().for_each(|v| *v /= 16.0);
        d.image = Some((1, 8, 8));
        d
    }

    /// The UCI breast cancer (diagnostic) set: 569 samples, 30 features, 2 classes. Raw feature
    /// scales differ by orders of magnitude: standardise (see [`Standardizer`]) before training.
    pub fn breast_cancer() -> Self {
        #[allow(clippy::expect_used)]
        parse_csv(BREAST_CANCER, true, Some(2)).expect("bundled breast_cancer.csv is valid")
    }

    /// Load a CSV file of numbers whose last column is an integer class label `0..k`. A first
    /// line that does not parse as numbers is taken as a header and skipped.
    pub fn load_csv(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Data(format!("{}: {e}", path.display())))?;
        let first = text.lines().next().unwrap_or("");
        let header = first.split(',').any(|f| f.trim().parse::<f64>().is_err());
        parse_csv(&text, header, None).map_err(|e| Error::Data(format!("{}: {e}", path.display())))
    }

    /// Load an IDX pair (the MNIST format): an unsigned-byte image file of rank 3 (or a rank-2
    /// matrix) and a rank-1 unsigned-byte label file. Pixels are scaled to `[0, 1]`.
    pub fn load_idx(images: &Path, labels: &Path) -> Result<Self> {
        let read =
            |p: &Path| std::fs::read(p).map_err(|e| Error::Data(format!("{}: {e}", p.display())));
        let (ifile, lfile) = (read(images)?, read(labels)?);
        let (idims, ibytes) = parse_idx(&ifile)?;
        let (ldims, lbytes) = parse_idx(&lfile)?;
        if ldims.len() != 1 || idims.is_empty() || idims[0] != ldims[0] {
            return Err(Error::Data(format!(
                "IDX shapes do not match: images {idims:?}, labels {ldims:?}"
            )));
        }
        let n = idims[0];
        let dim: usize = idims[1..].iter().product();
        let labels: Vec<i64> = lbytes.iter().map(|&b| i64::from(b)).collect();
        let classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
        let features = ibytes.iter().map(|&b| f32::from(b) / 255.0).collect();
        let mut d = Dataset::new(features, labels, dim.max(1), classes)?;
        if idims.len() == 3 {
            d.image = Some((1, idims[1], idims[2]));
        }
        debug_assert_eq!(d.len(), n);
        Ok(d)
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The samples at `idx`, in that order.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        let mut features = Vec::with_capacity(idx.len() * self.dim);
        for &i in idx {
            features.extend_from_slice(&self.features[i * self.dim..(i + 1) * self.dim]);
        }
        Dataset {
            features,
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            dim: self.dim,
            classes: self.classes,
            image: self.image,
        }
    }

    /// A stratified split: `test_fraction` of each class goes to the second set.
    pub fn split(&self, test_fraction: f64, seed: u64) -> (Dataset, Dataset) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for c in 0..self.classes as i64 {
            let mut idx: Vec<usize> = (0..self.len()).filter(|&i| self.labels[i] == c).collect();
            crate::partition::shuffle(&mut idx, &mut rng);
            let k = (idx.len() as f64 * test_fraction).round() as usize;
            test.extend_from_slice(&idx[..k]);
            train.extend_from_slice(&idx[k..]);
        }
        train.sort_unstable();
        test.sort_unstable();
        (self.subset(&train), self.subset(&test))
    }
}

/// Per-feature standardisation fitted on one set (the training set) and applied to others.
#[derive(Clone, Debug)]
pub struct Standardizer {
    mean: Vec<f32>,
    scale: Vec<f32>,
}

impl Standardizer {
    /// Fit means and standard deviations; constant features keep scale 1.
    pub fn fit(d: &Dataset) -> Self {
        let n = d.len().max(1) as f64;
        let mut mean = vec![0f64; d.dim];
        let mut sq = vec![0f64; d.dim];
        for row in d.features.chunks_exact(d.dim) {
            for (j, &v) in row.iter().enumerate() {
                mean[j] += f64::from(v);
                sq[j] += f64::from(v) * f64::from(v);
            }
        }
        let mut scale = vec![1f32; d.dim];
        for j in 0..d.dim {
            mean[j] /= n;
            let var = sq[j] / n - mean[j] * mean[j];
            if var > 1e-12 {
                scale[j] = var.sqrt() as f32;
            }
        }
        Standardizer {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            scale,
        }
    }

    /// Apply to a data set of the same width.
    pub fn apply(&self, d: &mut Dataset) {
        for row in d.features.chunks_exact_mut(d.dim) {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (*v - self.mean[j]) / self.scale[j];
            }
        }
    }
}

fn parse_csv(text: &str, header: bool, classes: Option<usize>) -> Result<Dataset> {
    let mut features = Vec::new();
    let mut labels = Vec::new();
    let mut dim = None;
    for (no, line) in text.lines().enumerate().skip(usize::from(header)) {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let width = fields.len() - 1;
        if width == 0 {
            return Err(Error::Data(format!(
                "line {}: needs features and a label",
                no + 1
            )));
        }
        if *dim.get_or_insert(width) != width {
            return Err(Error::Data(format!(
                "line {}: {} features, earlier lines had {}",
                no + 1,
                width,
                dim.unwrap_or(0)
            )));
        }
        for f in &fields[..width] {
            features.push(
                f.parse::<f32>()
                    .map_err(|e| Error::Data(format!("line {}: feature {f:?}: {e}", no + 1)))?,
            );
        }
        let label = fields[width];
        labels.push(
            label
                .parse::<i64>()
                .map_err(|e| Error::Data(format!("line {}: label {label:?}: {e}", no + 1)))?,
        );
    }
    let classes = classes.unwrap_or_else(|| labels.iter().max().map_or(0, |&m| m as usize + 1));
    Dataset::new(features, labels, dim.unwrap_or(0), classes)
}

/// Parse an IDX file of unsigned bytes: magic `00 00 08 rank`, then `rank` big-endian u32 sizes.
fn parse_idx(bytes: &[u8]) -> Result<(Vec<usize>, &[u8])> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(Error::Data("not an IDX file (bad magic)".into()));
    }
    if bytes[2] != 0x08 {
        return Err(Error::Data(format!(
            "IDX element type 0x{:02x} not supported (only unsigned bytes, 0x08)",
            bytes[2]
        )));
    }
    let rank = usize::from(bytes[3]);
    let head = 4 + 4 * rank;
    if rank == 0 || bytes.len() < head {
        return Err(Error::Data("IDX header truncated".into()));
    }
    let dims: Vec<usize> = bytes[4..head]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let total = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::Data("IDX sizes overflow".into()))?;
    let body = &bytes[head..];
    if body.len() != total {
        return Err(Error::Data(format!(
            "IDX body has {} bytes, the header promises {total}",
            body.len()
        )));
    }
    Ok((dims, body))
}

/// FedProx's Synthetic(alpha, beta) federated data (Li et al., MLSys 2020, section 5.1; after
/// Shamir et al. 2014): client k has its own softmax model `y = argmax(W_k x + b_k)` with
/// `W_k, b_k ~ N(u_k, 1)`, `u_k ~ N(0, alpha)`, and inputs `x ~ N(v_k, Sigma)` with
/// `v_k ~ N(B_k, 1)`, `B_k ~ N(0, beta)` and `Sigma` diagonal with `Sigma_jj = j^-1.2`.
/// Alpha controls how much local models differ, beta how much local inputs differ.
/// Client sizes follow a power law (log-normal, as in the paper's code), at least `min_size`.
pub fn synthetic(
    alpha: f64,
    beta: f64,
    clients: usize,
    dim: usize,
    classes: usize,
    min_size: usize,
    seed: u64,
) -> Result<Vec<Dataset>> {
    synthetic_clients(Some((alpha, beta)), clients, dim, classes, min_size, seed)
}

/// FedProx's Synthetic-IID: one softmax model `W, b ~ N(0, 1)` and inputs `x ~ N(0, Sigma)` for
/// every client (sizes as in [`synthetic`]), so that one global model fits every client.
pub fn synthetic_iid(
    clients: usize,
    dim: usize,
    classes: usize,
    min_size: usize,
    seed: u64,
) -> Result<Vec<Dataset>> {
    synthetic_clients(None, clients, dim, classes, min_size, seed)
}

/// Synthetic(alpha, beta) clients, or Synthetic-IID ones for `None`.
fn synthetic_clients(
    heterogeneity: Option<(f64, f64)>,
    clients: usize,
    dim: usize,
    classes: usize,
    min_size: usize,
    seed: u64,
) -> Result<Vec<Dataset>> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let std_normal = Normal::new(0.0, 1.0).map_err(|e| Error::Data(e.to_string()))?;
    let sizes = LogNormal::new(4.0, 2.0).map_err(|e| Error::Data(e.to_string()))?;
    let sigma: Vec<f64> = (1..=dim).map(|j| (j as f64).powf(-1.2).sqrt()).collect();
    let draw = |n: usize, mean: f64, rng: &mut ChaCha20Rng| -> Vec<f64> {
        (0..n).map(|_| mean + std_normal.sample(rng)).collect()
    };
    // (drawn only for Synthetic-IID, so that Synthetic(alpha, beta) stays as it was)
    let shared = heterogeneity.is_none().then(|| {
        (
            draw(classes * dim, 0.0, &mut rng),
            draw(classes, 0.0, &mut rng),
            vec![0.0; dim],
        )
    });
    let mut out = Vec::with_capacity(clients);
    for _ in 0..clients {
        let n = min_size + (sizes.sample(&mut rng) as usize).min(10_000);
        let (w, b, v) = match (heterogeneity, &shared) {
            (Some((alpha, beta)), _) => {
                let u = alpha.sqrt() * std_normal.sample(&mut rng);
                let b_k = beta.sqrt() * std_normal.sample(&mut rng);
                (
                    draw(classes * dim, u, &mut rng),
                    draw(classes, u, &mut rng),
                    draw(dim, b_k, &mut rng),
                )
            }
            (None, Some(shared)) => shared.clone(),
            (None, None) => return Err(Error::Data("synthetic data without a model".into())),
        };
        let mut features = Vec::with_capacity(n * dim);
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            let x: Vec<f64> = (0..dim)
                .map(|j| v[j] + sigma[j] * std_normal.sample(&mut rng))
                .collect();
            let mut best = (0, f64::NEG_INFINITY);
            for c in 0..classes {
                let logit: f64 = b[c] + (0..dim).map(|j| w[c * dim + j] * x[j]).sum::<f64>();
                if logit > best.1 {
                    best = (c, logit);
                }
            }
            features.extend(x.iter().map(|&v| v as f32));
            labels.push(best.0 as i64);
        }
        out.push(Dataset::new(features, labels, dim, classes)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bundled_sets_have_their_documented_shapes() {
        let d = Dataset::digits();
        assert_eq!((d.len(), d.dim, d.classes), (1797, 64, 10));
        assert!(d.features.iter().all(|&v| (0.0..=1.0).contains(&v)));
        let mut counts = [0usize; 10];
        d.labels.iter().for_each(|&l| counts[l as usize] += 1);
        assert!(
            counts.iter().all(|&c| (170..=190).contains(&c)),
            "{counts:?}"
        );
        let b = Dataset::breast_cancer();
        assert_eq!((b.len(), b.dim, b.classes), (569, 30, 2));
        assert_eq!(b.labels.iter().filter(|&&l| l == 0).count(), 212);
    }

    #[test]
    fn stratified_split_keeps_every_sample_once() {
        let d = Dataset::digits();
        let (train, test) = d.split(0.2, 7);
        assert_eq!(train.len() + test.len(), d.len());
        assert!((355..=365).contains(&test.len()), "{}", test.len());
        let mut b = Dataset::breast_cancer();
        let s = Standardizer::fit(&b);
        s.apply(&mut b);
        for j in 0..b.dim {
            let col: Vec<f64> = b
                .features
                .iter()
                .skip(j)
                .step_by(b.dim)
                .map(|&v| f64::from(v))
                .collect();
            let mean = col.iter().sum::<f64>() / col.len() as f64;
            let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / col.len() as f64;
            assert!(
                mean.abs() < 1e-4 && (var - 1.0).abs() < 1e-3,
                "feature {j}: {mean} {var}"
            );
        }
    }

    #[test]
    fn csv_and_idx_loaders_read_files_and_refuse_bad_ones() {
        let dir = std::env::temp_dir().join(format!("fedagg-train-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("a.csv");
        std::fs::write(&csv, "x,y,label\n1,2,0\n3,4.5,2\n").unwrap();
        let d = Dataset::load_csv(&csv).unwrap();
        assert_eq!((d.len(), d.dim, d.classes), (2, 2, 3));
        assert_eq!(d.features, vec![1.0, 2.0, 3.0, 4.5]);
        std::fs::write(&csv, "1,2,0\n3,0\n").unwrap();
        assert!(Dataset::load_csv(&csv).is_err());

        let mut img = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
        img.extend_from_slice(&[0, 255, 51, 102, 1, 2, 3, 4]);
        let lab = vec![0, 0, 8, 1, 0, 0, 0, 2, 1, 0];
        std::fs::write(dir.join("i"), &img).unwrap();
        std::fs::write(dir.join("l"), &lab).unwrap();
        let d = Dataset::load_idx(&dir.join("i"), &dir.join("l")).unwrap();
        assert_eq!(
            (d.len(), d.dim, d.classes, d.image),
            (2, 4, 2, Some((1, 2, 2)))
        );
        assert_eq!(d.features[1], 1.0);
        std::fs::write(dir.join("l"), &lab[..9]).unwrap();
        assert!(Dataset::load_idx(&dir.join("i"), &dir.join("l")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn synthetic_clients_differ_and_are_reproducible() {
        let a = synthetic(1.0, 1.0, 5, 60, 10, 10, 3).unwrap();
        let b = synthetic(1.0, 1.0, 5, 60, 10, 10, 3).unwrap();
        assert_eq!(a, b);
        assert!(a.iter().all(|d| d.len() >= 10 && d.dim == 60));
        // Each client's labels come from its own model: the majority classes differ.
        let majority = |d: &Dataset| {
            let mut c = [0; 10];
            d.labels.iter().for_each(|&l| c[l as usize] += 1);
            (0..10).max_by_key(|&i| c[i]).unwrap()
        };
        let m: std::collections::HashSet<_> = a.iter().map(majority).collect();
        assert!(m.len() > 1);
    }
}
