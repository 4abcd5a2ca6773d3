//! `/api/v1/files` (CHAT-R24, spec §4.13): streamed uploads, sandboxed downloads, and the
//! sweeper that deletes uploads no post took within a day.
//!
//! An upload is a `multipart/form-data` body with `channel_id` first, then `file`. The
//! channel is checked before any byte is written; the bytes stream to
//! `<files.dir>/tmp/<id>` with the size cap checked per chunk, are fsynced and renamed to
//! `<files.dir>/<yyyy>/<mm>/<id>`, and only then is the row inserted. The client's file
//! name is metadata only (path parts and control characters stripped, at most 255 bytes).
//! Downloads never let a browser render uploaded markup: only PNG/JPEG/GIF/WebP whose magic
//! bytes match are served inline, everything else as an `application/octet-stream`
//! attachment, always under `Content-Security-Policy: sandbox`.
//!
//! Not for: attaching files to posts (`ops::create_post` does that), object storage.

use std::path::Path;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, Path as UrlPath, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};

use super::channels::member_channel;
use crate::api::validate;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{FileInfo, Store, StoreError, StoreResult, now_ms};
use crate::{ids, store_read, store_write};

/// Upload cap in MiB until `site.max_file_size_mb` is read from `server_config`.
pub const DEFAULT_MAX_FILE_SIZE_MB: u64 = 50;
/// Longest stored file name, in bytes.
pub const MAX_FILE_NAME_BYTES: usize = 255;
/// Body allowance beyond the file cap for multipart framing and the `channel_id` field, so
/// the cap is enforced by the streaming check (a clean 413) rather than the body limit.
pub const MULTIPART_SLACK_BYTES: usize = 1024 * 1024;
/// Uploads no post attached are deleted after this long.
pub const UNATTACHED_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// How often the sweeper runs.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60 * 60);
/// Rows the sweeper reads per query.
pub const SWEEP_BATCH: i64 = 500;
/// Content types served inline (when the bytes' magic agrees).
pub const INLINE_IMAGE_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];
/// Subdirectory of `files.dir` uploads stream into before the rename.
pub const TMP_SUBDIR: &str = "tmp";
/// Write buffer of an upload in progress.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;
/// Read chunk of a download.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Longest accepted `channel_id` field (an id is 26 bytes).
const MAX_ID_FIELD_BYTES: usize = 64;
/// Bytes kept from the start of an upload for type sniffing.
const SNIFF_BYTES: usize = 16;
/// `Content-Type` of everything not served inline.
const OCTET_STREAM: &str = "application/octet-stream";
/// `Retry-After` when the disk is full or below `files.min_free_mb`.
const DISK_RETRY_AFTER_SECS: u32 = 60;

/// The upload cap in bytes.
pub fn max_file_bytes() -> u64 {
    DEFAULT_MAX_FILE_SIZE_MB * 1024 * 1024
}

/// The body limit of the upload route: the cap plus framing slack.
pub fn upload_body_limit() -> DefaultBodyLimit {
    DefaultBodyLimit::max(max_file_bytes() as usize + MULTIPART_SLACK_BYTES)
}

/// The native JSON shape of an upload.
pub fn render(f: &FileInfo) -> Value {
    json!({
        "id": f.id, "name": f.name, "size": f.size, "mime_type": f.mime_type,
        "channel_id": f.channel_id, "post_id": f.post_id, "user_id": f.user_id,
        "created_at": f.created_at,
    })
}

/// `POST /files` (multipart `channel_id`, then `file`): 201 with the upload's metadata.
pub async fn upload(
    State(st): State<AppState>,
    me: AuthUser,
    mp: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    let mut mp = mp.map_err(|_| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected a multipart/form-data body with the fields channel_id and file",
        )
    })?;
    match receive(&st, &me, &mut mp).await {
        Ok(f) => {
            st.metrics.upload_bytes.inc_by(f.size as u64);
            Ok((StatusCode::CREATED, Json(render(&f))).into_response())
        }
        Err(e) => {
            // Read what the client is still sending (bounded by the route's body limit) so
            // it gets this answer instead of a connection reset.
            while let Ok(Some(mut field)) = mp.next_field().await {
                while let Ok(Some(_)) = field.chunk().await {}
            }
            Err(e)
        }
    }
}

/// Reads the form: `channel_id` (checked at once), then `file` (stored).
async fn receive(st: &AppState, me: &AuthUser, mp: &mut Multipart) -> ApiResult<FileInfo> {
    let mut channel_id: Option<String> = None;
    while let Some(mut field) = mp.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("channel_id") => {
                let id = small_text(&mut field, "channel_id").await?;
                let (ch, _) = member_channel(st, me, &id).await?;
                if ch.is_archived() {
                    return Err(ApiError::forbidden("channel is archived"));
                }
                channel_id = Some(id);
            }
            Some("file") => {
                let Some(cid) = channel_id.take() else {
                    return Err(ApiError::validation(
                        "channel_id",
                        "send the channel_id field before the file field",
                    ));
                };
                return store_upload(st, me, cid, field).await;
            }
            other => {
                return Err(ApiError::validation(
                    other.unwrap_or("body").to_string(),
                    "unknown field: expected channel_id and file",
                ));
            }
        }
    }
    Err(ApiError::validation("file", "missing file field"))
}

/// A short text field, at most [`MAX_ID_FIELD_BYTES`].
async fn small_text(field: &mut Field<'_>, name: &'static str) -> ApiResult<String> {
    let mut buf = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        buf.extend_from_slice(&chunk);
        if buf.len() > MAX_ID_FIELD_BYTES {
            return Err(ApiError::validation(name, "not a valid id"));
        }
    }
    String::from_utf8(buf).map_err(|_| ApiError::validation(name, "not a valid id"))
}

fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large()
    } else {
        ApiError::validation(
            "file",
            format!("malformed multipart body: {}", e.body_text()),
        )
    }
}

fn too_large() -> ApiError {
    ApiError::too_large(format!(
        "file over the upload limit of {DEFAULT_MAX_FILE_SIZE_MB} MiB (site.max_file_size_mb)"
    ))
}

fn io_error(what: &'static str, e: std::io::Error) -> ApiError {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        tracing::error!(op = what, "files: disk full");
        return ApiError::unavailable("file storage is full", DISK_RETRY_AFTER_SECS);
    }
    tracing::error!(op = what, error = %e, "files: storage error");
    ApiError::internal()
}

/// Streams the file to `tmp`, fsyncs, renames it into place and inserts its row.
async fn store_upload(
    st: &AppState,
    me: &AuthUser,
    channel_id: String,
    field: Field<'_>,
) -> ApiResult<FileInfo> {
    let name = sanitize_file_name(field.file_name().unwrap_or(""));
    let declared = field.content_type().map(str::to_owned);
    let cfg = st.cfg();
    let dir = cfg.files.dir.clone();
    let tmp_dir = dir.join(TMP_SUBDIR);
    tokio::fs::create_dir_all(&tmp_dir)
        .await
        .map_err(|e| io_error("create_dir", e))?;
    let min_free = u64::from(cfg.files.min_free_mb) * 1024 * 1024;
    if let Ok(s) = rustix::fs::statvfs(&tmp_dir)
        && s.f_bavail.saturating_mul(s.f_frsize) < min_free
    {
        return Err(ApiError::unavailable(
            "file storage is below files.min_free_mb",
            DISK_RETRY_AFTER_SECS,
        ));
    }
    let id = ids::new_id();
    let tmp = tmp_dir.join(&id);
    let (size, sha256, head) = match stream_to(&tmp, field).await {
        Ok(v) => v,
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
    };
    let now = time::OffsetDateTime::now_utc();
    let rel = format!("{:04}/{:02}/{id}", now.year(), u8::from(now.month()));
    let dest = dir.join(&rel);
    let placed = async {
        let parent = dest.parent().unwrap_or(&dir);
        tokio::fs::create_dir_all(parent).await?;
        tokio::fs::rename(&tmp, &dest).await?;
        // The rename is durable only once the directory entry is on disk.
        tokio::fs::File::open(parent).await?.sync_all().await
    }
    .await;
    if let Err(e) = placed {
        let _ = tokio::fs::remove_file(&tmp).await;
        let _ = tokio::fs::remove_file(&dest).await;
        return Err(io_error("rename", e));
    }
    let row = FileInfo {
        id,
        user_id: me.user.id.clone(),
        channel_id,
        post_id: String::new(),
        name,
        size: size as i64,
        mime_type: mime_type(&head, declared.as_deref()),
        path: rel,
        sha256,
        created_at: now_ms(),
    };
    match store_write!(st.store, |c| ops::insert_file(c, row).await) {
        Ok(f) => Ok(f),
        Err(e) => {
            let _ = tokio::fs::remove_file(&dest).await;
            Err(e.into())
        }
    }
}

/// Writes the field to `path` (new file), enforcing the cap per chunk; returns the size,
/// the hex SHA-256 and the first bytes.
async fn stream_to(path: &Path, mut field: Field<'_>) -> ApiResult<(u64, String, Vec<u8>)> {
    let max = max_file_bytes();
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .await
        .map_err(|e| io_error("create", e))?;
    let mut w = BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        size += chunk.len() as u64;
        if size > max {
            return Err(too_large());
        }
        let take = (SNIFF_BYTES - head.len()).min(chunk.len());
        head.extend_from_slice(&chunk[..take]);
        hasher.update(&chunk);
        w.write_all(&chunk)
            .await
            .map_err(|e| io_error("write", e))?;
    }
    w.flush().await.map_err(|e| io_error("write", e))?;
    w.into_inner()
        .sync_all()
        .await
        .map_err(|e| io_error("fsync", e))?;
    Ok((size, hex(&hasher.finalize()), head))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The client's file name as metadata: the last path part, control characters removed,
/// trimmed, at most [`MAX_FILE_NAME_BYTES`] (cut at a character boundary); `file` when
/// nothing is left.
pub fn sanitize_file_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = last.chars().filter(|c| !c.is_control()).collect();
    let clean = clean.trim();
    if clean.is_empty() || clean == "." || clean == ".." {
        return "file".into();
    }
    let mut end = clean.len().min(MAX_FILE_NAME_BYTES);
    while !clean.is_char_boundary(end) {
        end -= 1;
    }
    clean[..end].to_string()
}

/// The image type the bytes start with, if one of [`INLINE_IMAGE_TYPES`].
fn sniff_image(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if head.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// The stored type: a sniffed image type, else the declared type when well-formed (it is
/// never served as such, see [`download`]) and not claiming to be an inline image.
pub fn mime_type(head: &[u8], declared: Option<&str>) -> String {
    if let Some(m) = sniff_image(head) {
        return m.into();
    }
    let declared = declared
        .and_then(|d| d.split(';').next())
        .map(|d| d.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    let well_formed = declared.len() <= 127
        && declared
            .split_once('/')
            .is_some_and(|(t, s)| token(t) && token(s));
    if well_formed && !INLINE_IMAGE_TYPES.contains(&declared.as_str()) {
        declared
    } else {
        OCTET_STREAM.into()
    }
}

/// The upload, if the caller is a member of its channel (or system_admin); 404 otherwise.
async fn readable_file(st: &AppState, me: &AuthUser, id: &str) -> ApiResult<FileInfo> {
    validate::id("file_id", id)?;
    let (fid, uid) = (id.to_string(), me.user.id.clone());
    let admin = me.user.is_system_admin();
    let found = store_read!(st.store, |c| {
        let f = ops::file_by_id(c, &fid).await?;
        let member = admin || ops::channel_member(c, &f.channel_id, &uid).await?.is_some();
        Ok(member.then_some(f))
    });
    match found {
        Ok(Some(f)) => Ok(f),
        Ok(None) | Err(StoreError::NotFound) => Err(ApiError::not_found("file")),
        Err(e) => Err(e.into()),
    }
}

/// `GET /files/{id}/info`.
pub async fn info(
    State(st): State<AppState>,
    me: AuthUser,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(render(&readable_file(&st, &me, &id).await?)))
}

/// `GET /files/{id}`: the bytes; images inline, everything else as an attachment.
pub async fn download(
    State(st): State<AppState>,
    me: AuthUser,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Response> {
    let f = readable_file(&st, &me, &id).await?;
    let path = st.cfg().files.dir.join(&f.path);
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(file_id = %f.id, "files: stored bytes missing");
            return Err(ApiError::not_found("file"));
        }
        Err(e) => return Err(io_error("open", e)),
    };
    let stream = futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; READ_CHUNK_BYTES];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let inline = INLINE_IMAGE_TYPES.contains(&f.mime_type.as_str());
    let (content_type, disposition) = if inline {
        (f.mime_type.clone(), "inline".to_string())
    } else {
        (OCTET_STREAM.to_string(), attachment(&f.name))
    };
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    let value = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""));
    h.insert(header::CONTENT_TYPE, value(&content_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(f.size));
    h.insert(header::CONTENT_DISPOSITION, value(&disposition));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    Ok(resp)
}

/// `attachment; filename="<ASCII fallback>"; filename*=UTF-8''<percent-encoded>` (RFC 6266).
fn attachment(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Deletes uploads no post attached that are older than `max_age` (row first, then bytes,
/// so a post attaching meanwhile keeps its file), and leftovers in `tmp` from interrupted
/// uploads older than `max_age`. Returns how many uploads were deleted.
pub async fn sweep_unattached(
    store: &Store,
    files_dir: &Path,
    max_age: Duration,
) -> StoreResult<u64> {
    let cutoff = now_ms() - i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
    let mut removed = 0;
    loop {
        let batch = store_read!(*store, |c| ops::unattached_files(c, cutoff, SWEEP_BATCH)
            .await)?;
        let full = batch.len() as i64 == SWEEP_BATCH;
        for f in batch {
            let id = f.id.clone();
            if store_write!(*store, |c| ops::delete_unattached_file(c, &id).await)? {
                remove_quietly(&files_dir.join(&f.path)).await;
                removed += 1;
            }
        }
        if !full {
            break;
        }
    }
    if let Ok(mut entries) = tokio::fs::read_dir(files_dir.join(TMP_SUBDIR)).await {
        let oldest = SystemTime::now().checked_sub(max_age);
        while let Ok(Some(e)) = entries.next_entry().await {
            let modified = e.metadata().await.and_then(|m| m.modified()).ok();
            if let (Some(m), Some(oldest)) = (modified, oldest)
                && m < oldest
            {
                remove_quietly(&e.path()).await;
            }
        }
    }
    Ok(removed)
}

async fn remove_quietly(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, "files: could not delete an unattached upload");
    }
}

/// Runs [`sweep_unattached`] with [`UNATTACHED_MAX_AGE`] every [`SWEEP_INTERVAL`] until
/// shutdown begins.
pub fn spawn_sweeper(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            if state
                .shutting_down
                .load(std::sync::atomic::Ordering::Acquire)
            {
                break;
            }
            let dir = state.cfg().files.dir.clone();
            match sweep_unattached(&state.store, &dir, UNATTACHED_MAX_AGE).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "files: unattached uploads deleted"),
                Err(e) => tracing::warn!(error = %e, "files: sweep failed"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_path_parts_and_control_characters() {
        assert_eq!(sanitize_file_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_file_name("C:\\Users\\x\\report.pdf"), "report.pdf");
        assert_eq!(sanitize_file_name("a\u{0}b\u{7}c\nd.txt"), "abcd.txt");
        assert_eq!(sanitize_file_name(""), "file");
        assert_eq!(sanitize_file_name("dir/.."), "file");
        let long = "é".repeat(200);
        let cut = sanitize_file_name(&long);
        assert!(cut.len() <= MAX_FILE_NAME_BYTES && cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn only_sniffed_images_get_an_inline_type() {
        assert_eq!(mime_type(b"\x89PNG\r\n\x1a\nxxxx", None), "image/png");
        assert_eq!(mime_type(b"GIF89a...", Some("text/plain")), "image/gif");
        assert_eq!(mime_type(b"RIFF\0\0\0\0WEBPVP8 ", None), "image/webp");
        assert_eq!(mime_type(b"<html>", Some("image/png")), OCTET_STREAM);
        assert_eq!(
            mime_type(b"<html>", Some("text/html; charset=utf-8")),
            "text/html"
        );
        assert_eq!(mime_type(b"x", Some("bad type\r\n")), OCTET_STREAM);
        assert_eq!(mime_type(b"x", None), OCTET_STREAM);
    }

    #[test]
    fn attachment_header_is_quoted_ascii_plus_utf8_form() {
        assert_eq!(
            attachment("a \"b\".html"),
            "attachment; filename=\"a _b_.html\"; filename*=UTF-8''a%20%22b%22.html"
        );
        assert!(attachment("é.txt").ends_with("UTF-8''%C3%A9.txt"));
    }
}
