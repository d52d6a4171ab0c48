//! Errors of the HTTP API: typed inside, JSON at the edge.
//!
//! Every error answers `{"error": "<what is wrong>", "code": "<code>"}` with
//! the matching status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;

/// What a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed request (bad JSON, bad query parameter).
    #[error("{0}")]
    BadRequest(String),
    /// 401: no token, unknown or expired token, wrong password.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such thing.
    #[error("{0}")]
    NotFound(String),
    /// 405: the path exists, the method does not.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409: the request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// 422: well-formed but invalid values.
    #[error("{0}")]
    Invalid(String),
    /// 503: a part of the server this needs is not running.
    #[error("{0}")]
    Unavailable(String),
    /// 500: the database failed.
    #[error("storage error: {0}")]
    Store(#[from] crate::store::StoreError),
    /// 500: anything else that is our fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable `code` of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::Invalid(_) => "invalid",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Store(_) | ApiError::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "API request failed");
        }
        let body = serde_json::json!({"error": self.to_string(), "code": self.code()});
        (status, Json(body)).into_response()
    }
}

/// Result alias of the handlers.
pub type ApiResult<T> = Result<T, ApiError>;

/// Parse a JSON request body, saying exactly what is wrong (line, column,
/// field) in a 400 when it does not fit `T`.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "request body is empty; expected JSON".into(),
        ));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("invalid JSON: {e}")))
}

/// Fallback for paths that match no route.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

/// `axum::extract::Query` whose rejection is a JSON 400.
pub struct Q<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Q<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Q(q.0))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// `axum::extract::Path` whose rejection is a JSON 400.
pub struct P<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for P<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| P(p.0))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Login {
        id: String,
        password: String,
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        let e = parse_json::<Login>(b"{\"id\": 1}").unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(e.to_string().contains("invalid type"), "{e}");
        let e = parse_json::<Login>(b"{\"id\": \"a\"}").unwrap_err();
        assert!(e.to_string().contains("missing field `password`"), "{e}");
        let e = parse_json::<Login>(b"{nope").unwrap_err();
        assert!(e.to_string().contains("line 1 column 2"), "{e}");
        let e = parse_json::<Login>(b"").unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
    }
}
