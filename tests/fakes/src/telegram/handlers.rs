//! HTTP entry point: `/bot{TOKEN}/{method}` routing, auth, injected failures and dispatch.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::Router;

use super::params::Params;
use super::state::{Call, Shared};
use super::wire::{self, ApiError, ApiResult};
use super::{actions, messages, updates};

/// Bodies are small JSON, but multipart uploads may carry files.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).layer(DefaultBodyLimit::max(BODY_LIMIT)).with_state(shared)
}

/// `("TOKEN", "method")` from `/botTOKEN/method` (any HTTP verb, like Telegram).
fn split_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/bot")?;
    let (token, method) = rest.split_once('/')?;
    (!method.is_empty() && !method.contains('/')).then_some((token, method))
}

async fn handle(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let at = Instant::now();
    let Some((token, method)) = split_path(uri.path()) else {
        return wire::respond(Err(ApiError::new(404, "Not Found")));
    };
    let method = method.to_ascii_lowercase();
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let parsed = Params::parse(uri.query(), content_type, &body);
    let recorded = parsed.as_ref().map(Params::to_value).unwrap_or_default();
    shared.lock().calls.push(Call { method: method.clone(), params: recorded, at });
    if token != wire::TOKEN {
        return wire::respond(Err(ApiError::unauthorized()));
    }
    if let Some(failure) = shared.lock().take_failure(&method) {
        return wire::respond(Err(failure));
    }
    let result = match parsed {
        Ok(params) => dispatch(&shared, &method, &params).await,
        Err(error) => Err(error),
    };
    wire::respond(result)
}

async fn dispatch(shared: &Shared, method: &str, params: &Params) -> ApiResult {
    if method == "getupdates" {
        return updates::get_updates(shared, params).await;
    }
    let mut state = shared.lock();
    match method {
        "getme" => Ok(wire::me()),
        "setwebhook" => updates::set_webhook(&mut state, params),
        "deletewebhook" => updates::delete_webhook(&mut state, params),
        "getwebhookinfo" => updates::get_webhook_info(&state),
        "sendmessage" => messages::send_message(&mut state, params),
        "editmessagetext" => messages::edit_message_text(&mut state, params),
        "editmessagereplymarkup" => messages::edit_message_reply_markup(&mut state, params),
        "deletemessage" => messages::delete_message(&mut state, params),
        "answercallbackquery" => actions::answer_callback_query(&mut state, params),
        "sendchataction" => actions::send_chat_action(&mut state, params),
        "setmycommands" => actions::set_my_commands(&mut state, params),
        "getmycommands" => actions::get_my_commands(&state),
        "deletemycommands" => actions::delete_my_commands(&mut state),
        _ => Err(ApiError::not_found_method()),
    }
}
