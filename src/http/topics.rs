//! Reading the embedded topic log: `GET /api/topics` and
//! `GET /api/topics/{topic}/messages?from_offset=&limit=`.

use super::AppState;
use super::error::AppError;
use super::extract::ApiQuery;
use crate::domain::timestamp;
use app::dto::{TopicDto, TopicMessageDto, TopicMessagesDto};
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// `GET /api/topics/{topic}/messages` query: where to start and how many.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessagesQuery {
    /// The first offset to read (default 0); pass the last answer's `next_offset` to go on.
    #[param(minimum = 0)]
    from_offset: Option<i64>,
    /// Most messages per answer, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// `GET /api/topics`: each topic of the embedded log with its offsets.
#[utoipa::path(
    get,
    path = "/api/topics",
    operation_id = "listTopics",
    tag = "topics",
    responses((
        status = 200,
        description = "Every topic",
        body = Vec<app::dto::TopicDto>,
        links((
            "messages" = (
                operation_id = "readTopicMessages",
                parameters(("topic" = "$response.body#/0/topic"))
            )
        ))
    ))
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<TopicDto>>, AppError> {
    let topics = state.topic_log.topics().await?;
    Ok(Json(
        topics
            .into_iter()
            .map(|t| TopicDto {
                topic: t.topic,
                messages: t.messages,
                first_offset: t.first_offset,
                next_offset: t.next_offset,
            })
            .collect(),
    ))
}

/// `GET /api/topics/{topic}/messages`: messages of one topic from an offset on.
#[utoipa::path(
    get,
    path = "/api/topics/{topic}/messages",
    operation_id = "readTopicMessages",
    tag = "topics",
    params(("topic" = String, Path, description = "The topic's name"), MessagesQuery),
    responses(
        (status = 200, description = "Messages in offset order", body = app::dto::TopicMessagesDto),
        (status = 404, description = "`not_found`: no such topic", body = app::dto::ErrorBody),
    )
)]
pub async fn messages(
    State(state): State<AppState>,
    Path(topic): Path<String>,
    ApiQuery(query): ApiQuery<MessagesQuery>,
) -> Result<Json<TopicMessagesDto>, AppError> {
    let bad = AppError::invalid_query;
    let from_offset = query.from_offset.unwrap_or(0);
    if from_offset < 0 {
        return Err(bad("from_offset must not be negative".into()));
    }
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(bad(format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    let Some(summary) = state.topic_log.topic(topic.clone()).await? else {
        return Err(AppError::NotFound("topic"));
    };
    let messages = state
        .topic_log
        .read(topic.clone(), from_offset, limit)
        .await?;
    let next_offset = messages.last().map_or(from_offset, |m| m.offset + 1);
    Ok(Json(TopicMessagesDto {
        topic,
        end_offset: summary.next_offset,
        next_offset,
        messages: messages
            .into_iter()
            .map(|m| TopicMessageDto {
                offset: m.offset,
                key: m.key,
                value: m.value,
                headers: m.headers,
                appended_at: timestamp(&m.appended_at),
            })
            .collect(),
    }))
}
