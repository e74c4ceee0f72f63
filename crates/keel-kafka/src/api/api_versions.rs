//! ApiVersions (18): the api keys and versions this broker serves, exactly as implemented.
//!
//! A request at a version newer than served is answered at version 0 with
//! `UNSUPPORTED_VERSION` and the full list, so the client can retry at a version both know
//! (this answer is built in `connection.rs`, since such a request is never decoded).

use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::messages::api_versions_response::ApiVersion;

use crate::broker::Broker;

/// Answers ApiVersions.
pub(crate) fn handle(broker: &Broker, _version: i16) -> ApiVersionsResponse {
    response(broker, 0)
}

/// The response listing every served key, with `error_code`.
pub(crate) fn response(broker: &Broker, error_code: i16) -> ApiVersionsResponse {
    let api_keys = broker
        .all_versions()
        .into_iter()
        .map(|(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
}
