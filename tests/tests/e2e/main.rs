//! End-to-end tests, in one test binary (as DataFusion's `core_integration`): each module is
//! one area, run against the real `bhavstore` binary, real files, real clients and a real S3
//! server. One binary links the whole stack once instead of once per area.

mod airflow;
mod bse_download;
mod cli;
mod client_flight_rest;
mod client_postgres;
mod client_python;
mod console;
mod corporate_actions;
mod feature_views;
mod hardening_ingest;
mod hardening_serving;
mod intraday;
mod materialize;
mod mlflow;
mod quality;
mod real_files;
mod rest;
mod s3_outage;
mod scheduler;
mod serving;
mod stack;
mod storage_backends;
