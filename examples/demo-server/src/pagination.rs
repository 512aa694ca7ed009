//! Opaque cursors for every list (`--page-size`).
//!
//! A cursor is the hex of `"{list}:{offset}"`. It is opaque to clients, names
//! its list so a tools cursor is rejected by resources/list (-32602), and
//! survives list changes: an offset past the end just yields the last, empty page.

use serde_json::Value;

use crate::protocol::{RpcError, hex_decode, hex_encode};

pub(crate) struct Page {
    pub items: Vec<Value>,
    pub next_cursor: Option<String>,
}

/// The page of `items` that `cursor` points at (the first page without one).
pub(crate) fn page(
    list: &str,
    items: Vec<Value>,
    cursor: Option<&str>,
    page_size: Option<usize>,
) -> Result<Page, RpcError> {
    let start = match cursor {
        None => 0,
        Some(cursor) => decode(list, cursor)
            .ok_or_else(|| RpcError::invalid_params(format!("invalid cursor for {list}")))?,
    };
    let end = match page_size {
        Some(size) => start.saturating_add(size).min(items.len()),
        None => items.len(),
    };
    let next_cursor = (end < items.len()).then(|| encode(list, end));
    let items = items
        .into_iter()
        .skip(start)
        .take(end.saturating_sub(start))
        .collect();
    Ok(Page { items, next_cursor })
}

fn encode(list: &str, offset: usize) -> String {
    hex_encode(format!("{list}:{offset}").as_bytes())
}

fn decode(list: &str, cursor: &str) -> Option<usize> {
    let text = String::from_utf8(hex_decode(cursor)?).ok()?;
    let (name, offset) = text.split_once(':')?;
    if name != list {
        return None;
    }
    offset.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn items(n: usize) -> Vec<Value> {
        (0..n).map(|i| json!(i)).collect()
    }

    #[test]
    fn walks_all_pages() {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = page("tools", items(5), cursor.as_deref(), Some(2)).unwrap();
            assert!(page.items.len() <= 2);
            seen.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, items(5));
    }

    #[test]
    fn one_page_without_size() {
        let page = page("tools", items(5), None, None).unwrap();
        assert_eq!(page.items.len(), 5);
        assert!(page.next_cursor.is_none());
    }

    #[test]
    fn rejects_bad_and_foreign_cursors() {
        assert!(page("tools", items(5), Some("nope"), Some(2)).is_err());
        let foreign = encode("prompts", 2);
        assert!(page("tools", items(5), Some(&foreign), Some(2)).is_err());
    }

    #[test]
    fn offset_past_the_end_is_an_empty_last_page() {
        let page = page("tools", items(1), Some(&encode("tools", 4)), Some(2)).unwrap();
        assert!(page.items.is_empty());
        assert!(page.next_cursor.is_none());
    }
}
