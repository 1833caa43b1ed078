//! One error type for every route, written as FastAPI writes errors (SPEC §3).

use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use palisade::auth::AuthError;
use serde_json::{Value, json};

/// The result type of handlers.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Everything a route can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400, with the tutorial's message (e.g. `Username already registered`).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// 401, with `WWW-Authenticate: Bearer`.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// 401 or 503 from token verification.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// 404: no such route.
    #[error("not found")]
    NotFound,
    /// 413: the body is larger than allowed.
    #[error("payload too large")]
    PayloadTooLarge,
    /// 422 with FastAPI's list of field errors.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// 503: a backend did not answer.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// 500; the cause is logged, never sent.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// Wraps any error as a 500.
    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError::Internal(Box::new(e))
    }

    /// The status this error answers with.
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Auth(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Auth(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = match &self {
            ApiError::BadRequest(m) | ApiError::Unauthorized(m) => json!({ "detail": m }),
            ApiError::Auth(e) => {
                tracing::info!(reason = %e, "token refused");
                json!({ "detail": e.detail() })
            }
            ApiError::NotFound => json!({ "detail": "Not Found" }),
            ApiError::PayloadTooLarge => json!({ "detail": "Request body too large" }),
            ApiError::Validation(errors) => {
                json!({ "detail": errors.iter().map(FieldError::to_json).collect::<Vec<_>>() })
            }
            ApiError::Unavailable(cause) => {
                tracing::error!(cause = %cause, "backend unavailable");
                json!({ "detail": "Service temporarily unavailable" })
            }
            ApiError::Internal(cause) => {
                tracing::error!(error = %error_chain(cause.as_ref()), "internal error");
                json!({ "detail": "Internal Server Error" })
            }
        };
        let mut res = palisade::error_response::json(status, &body);
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

/// `error: cause: cause…`, for logs.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// One entry of a 422 `detail` list, as pydantic writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `["body", "<field>"]`.
    pub loc: Vec<Value>,
    /// Human-readable message.
    pub msg: String,
    /// Machine-readable kind (`missing`, `string_type`, `value_error`, …).
    pub kind: &'static str,
}

impl FieldError {
    /// An error about body field `field`.
    pub fn body(field: &str, kind: &'static str, msg: impl Into<String>) -> Self {
        Self {
            loc: vec![json!("body"), json!(field)],
            msg: msg.into(),
            kind,
        }
    }

    fn to_json(&self) -> Value {
        json!({ "loc": self.loc, "msg": self.msg, "type": self.kind })
    }
}

/// A request body type that validates itself from JSON, reporting every bad field at once.
pub trait FromJsonBody: Sized {
    /// Builds `Self` from the parsed body.
    fn from_json(fields: &mut Fields<'_>) -> Option<Self>;
}

/// Reads string fields out of a JSON object, collecting [`FieldError`]s.
pub struct Fields<'a> {
    object: &'a serde_json::Map<String, Value>,
    /// Errors so far.
    pub errors: Vec<FieldError>,
}

impl Fields<'_> {
    /// A required string field.
    pub fn string(&mut self, name: &str) -> Option<String> {
        match self.object.get(name) {
            None | Some(Value::Null) => {
                self.errors
                    .push(FieldError::body(name, "missing", "Field required"));
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.errors.push(FieldError::body(
                    name,
                    "string_type",
                    "Input should be a valid string",
                ));
                None
            }
        }
    }

    /// Records a failed domain check (`value_error`) for `name`.
    pub fn invalid(&mut self, name: &str, msg: impl std::fmt::Display) {
        self.errors.push(FieldError::body(
            name,
            "value_error",
            format!("Value error, {msg}"),
        ));
    }
}

/// A JSON body extractor whose failures share the API's error shape: 422 with field errors for
/// bad JSON or bad fields, 413 for an oversized body.
#[derive(Debug)]
pub struct AppJson<T>(pub T);

impl<T: FromJsonBody, S: Send + Sync> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // As FastAPI: a missing Content-Type is read as JSON, any other non-JSON type is refused.
        let json_type = match req.headers().get(header::CONTENT_TYPE) {
            None => true,
            Some(v) => v.to_str().is_ok_and(|ct| {
                let essence = ct
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                essence == "application/json"
                    || (essence.starts_with("application/") && essence.ends_with("+json"))
            }),
        };
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| match e {
                BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
                    ApiError::PayloadTooLarge
                }
                _ => ApiError::BadRequest("Could not read the request body"),
            })?;
        let not_object = || {
            ApiError::Validation(vec![FieldError {
                loc: vec![json!("body")],
                msg: "Input should be a valid dictionary or object to extract fields from"
                    .to_owned(),
                kind: "model_attributes_type",
            }])
        };
        if !json_type {
            return Err(not_object());
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::Validation(vec![FieldError {
                loc: vec![json!("body"), json!(e.column())],
                msg: "JSON decode error".to_owned(),
                kind: "json_invalid",
            }])
        })?;
        let object = value.as_object().ok_or_else(not_object)?;
        let mut fields = Fields {
            object,
            errors: Vec::new(),
        };
        match T::from_json(&mut fields) {
            Some(v) if fields.errors.is_empty() => Ok(AppJson(v)),
            _ => Err(ApiError::Validation(fields.errors)),
        }
    }
}
