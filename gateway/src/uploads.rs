//! Where uploaded images and clips live and how they are named: by the SHA-256 of their bytes, as
//! `<data_dir>/uploads/<sha256>` on disk and `/api/uploads/<sha256>` on the web. The one place the REST API,
//! scene validation and the program agree on it.

use std::path::{Path, PathBuf};

/// The type a video clip is kept as (MP4, checked to decode when uploaded).
pub const CLIP_TYPE: &str = "video/mp4";

/// A content address: 64 lowercase hex digits, as uploads are named.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The URL an upload is served at.
pub fn url(sha: &str) -> String {
    format!("/api/uploads/{sha}")
}

/// The content address in an upload's URL, if `url` is one.
pub fn sha_of_url(url: &str) -> Option<&str> {
    url.strip_prefix("/api/uploads/").filter(|sha| is_sha256(sha))
}

/// The folder uploads are kept in.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("uploads")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lowercase_content_addresses_name_uploads() {
        let sha = "ab".repeat(32);
        assert_eq!(sha_of_url(&url(&sha)), Some(sha.as_str()));
        for bad in ["/api/uploads/".to_owned(), format!("/api/uploads/AB{}", "ab".repeat(31)), format!("/x/{sha}")] {
            assert_eq!(sha_of_url(&bad), None, "{bad}");
        }
        assert!(!is_sha256(&"g".repeat(64)) && !is_sha256("ab"));
    }
}
