//! The `fedagg` command's library side: [`demo`], the demo federation (the project's main job),
//! kept here so that integration tests drive the same code as `fedagg demo`, and [`dropout`],
//! the simulated dropouts the demo and the service tests share, and [`authority`], the enrollment
//! authority's key and roster signing (`fedagg authority`), and the operators' tools:
//! [`admin`] (`fedagg admin`, with [`spec`] for federation specs) and [`key_holder`]
//! (`fedagg key-holder`).

pub mod admin;
pub mod authority;
#[cfg(feature = "demo")]
pub mod demo;
pub mod dropout;
pub mod key_holder;
pub mod spec;

/// Log to stderr, filtered by `FEDAGG_LOG` (`info` by default): the logging of the long-running
/// commands, `fedagg serve` and `fedagg key-holder`.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FEDAGG_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
}
