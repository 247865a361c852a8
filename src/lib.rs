//! fvs: the workspace root package; it owns the integration tests, benches and examples.
