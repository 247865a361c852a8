//! fvs binaries and the configuration database.
