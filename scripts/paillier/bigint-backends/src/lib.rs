//! Placeholder library so the benches have a package; see benches/backends.rs.
