//! Simulated dropouts, for the demo and the service tests: a participant that vanishes from a
//! round at a chosen point, as a crashed process would. It is built on the SDK's public API
//! alone (the progress callback says which phase's message was accepted, and dropping the
//! contribution's future stops it there), so the SDK itself carries no test hook.

use std::sync::{Arc, Mutex};

use fedagg_api::Phase;
use fedagg_client::{Client, Contribute, Error, OnProgress, Outcome, Progress};

/// Where a simulated participant vanishes from a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vanish {
    /// It never sends anything.
    BeforeSending,
    /// Right after the server accepted its message for this phase.
    After(Phase),
}

/// The four points of a SecAgg round at which a participant can vanish (Bonawitz et al.'s
/// dropout cases: before round 0, and after rounds 0, 1 and 2).
pub const SECAGG_VANISH_POINTS: [Vanish; 4] = [
    Vanish::BeforeSending,
    Vanish::After(Phase::AdvertiseKeys),
    Vanish::After(Phase::ShareKeys),
    Vanish::After(Phase::MaskedInput),
];

/// Contribute `update` as [`Client::contribute_with`] does, or, with `vanish`, like a participant
/// that crashes at that point: then `Ok(None)`, once it is gone.
pub async fn contribute(
    client: &Client,
    update: &[f32],
    weight: u64,
    opts: Contribute,
    vanish: Option<Vanish>,
) -> Result<Option<Outcome>, Error> {
    let phase = match vanish {
        None => return client.contribute_with(update, weight, opts).await.map(Some),
        Some(Vanish::BeforeSending) => return Ok(None),
        Some(Vanish::After(phase)) => phase,
    };
    let (gone, vanished) = tokio::sync::oneshot::channel::<()>();
    let gone = Mutex::new(Some(gone));
    let inner = opts.progress.clone();
    let progress: OnProgress = Arc::new(move |p: &Progress| {
        if let Some(f) = &inner {
            f(p);
        }
        if p.sent == Some(phase) {
            let tx = gone
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            if let Some(tx) = tx {
                let _ = tx.send(());
            }
        }
    });
    let opts = Contribute {
        progress: Some(progress),
        ..opts
    };
    // The callback runs inside the contribution's future; the next time that future waits,
    // `vanished` is ready and the future is dropped: nothing more is sent.
    tokio::select! {
        biased;
        _ = vanished => Ok(None),
        r = client.contribute_with(update, weight, opts) => r.map(Some),
    }
}
