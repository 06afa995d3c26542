//! What the integration tests share. Every test binary declares `mod support;` and takes what it
//! needs with `use support::...`; a binary uses only part of it, hence `dead_code` is allowed.
//!
//! - [`env`]: `CV_REQUIRE_REFERENCE`, the crate and reference directories, the venv's python,
//!   the `cloudvolume` binary, free ports;
//! - [`files`]: [`files::TempDir`], file:// URLs, directory snapshots;
//! - [`cabi`]: calling the C ABI from Rust (handles, statuses, last errors, reads);
//! - [`cc`]: compiling and linking C programs against the library;
//! - [`cv_python`]: asking cloud-volume (the venv's python) for its answers to compare with;
//! - [`store_suite`]: the conformance suite every store passes;
//! - [`sharding`]: the sharded format's hash, compressed Morton codes and shard specs, written
//!   from the format digest (independent of the library's own);
//! - [`layers`]: small layers written on disk, with the bytes any box must read as;
//! - servers: [`httpd`] (a static file server with byte ranges), [`nginx`] (a real nginx,
//!   optionally writable), [`proxy`] (latency), [`fault_proxy`] (faults), [`proxied_layer`]
//!   (a layer behind both), [`moto`] (S3), [`fake_gcs`] and [`token_server`] (GCS),
//!   [`chunkedgraph`] (the PyChunkedGraph double and its graphene fixture), [`service_double`]
//!   (the DVID and BOSS doubles).

#![allow(dead_code)]

pub mod cabi;
pub mod cc;
pub mod chunkedgraph;
pub mod cv_python;
pub mod env;
pub mod fake_gcs;
pub mod fault_proxy;
pub mod files;
pub mod httpd;
pub mod layers;
pub mod moto;
pub mod nginx;
pub mod proxied_layer;
pub mod proxy;
pub mod service_double;
pub mod sharding;
pub mod store_suite;
pub mod token_server;
