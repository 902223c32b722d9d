//! IRCv3 `labeled-response` and `batch`: the answer to a command sent with a `label` tag
//! carries that label, so a client can tell which answer is whose.
//!
//! An answer of one line gets the tag; one of several lines is wrapped in a
//! `labeled-response` batch whose start line gets it; no answer at all is an `ACK`. The
//! door writes answers as it always does and [`wrap`] rewrites them afterwards, so no
//! command needs to know about labels. Answers that come later (a `PONG`, a history
//! page, an echoed message) are labeled where they are written.

use bytes::BytesMut;

/// The longest label taken; a longer one is ignored (the command is answered unlabeled).
pub(crate) const MAX_LABEL: usize = 64;

/// The label of a command, if it has a usable one.
pub(crate) fn of(tags: &[(String, String)]) -> Option<Box<str>> {
    let (_, label) = tags.iter().find(|(key, _)| key == "label")?;
    (!label.is_empty() && label.len() <= MAX_LABEL).then(|| label.as_str().into())
}

/// Names batches: a counter, written in base 36.
#[derive(Debug, Default)]
pub(crate) struct Batches(u64);

impl Batches {
    /// A new batch reference.
    pub(crate) fn next(&mut self) -> String {
        self.0 += 1;
        let mut n = self.0;
        let mut digits = Vec::new();
        while n > 0 {
            digits.push(char::from_digit((n % 36) as u32, 36).unwrap_or('0'));
            n /= 36;
        }
        digits.iter().rev().collect()
    }
}

/// Labels what was written to `out` from `start` on, the whole answer to one command:
/// nothing becomes `ACK`, one line gets the tag, several are wrapped in a batch.
pub(crate) fn wrap(
    out: &mut BytesMut,
    start: usize,
    server: &str,
    label: &str,
    batches: &mut Batches,
) {
    // Copied out and back, rarely: `out` keeps its allocation.
    let answer = out[start..].to_vec();
    out.truncate(start);
    let tag = label_tag(label);
    let lines = answer.split_inclusive(|b| *b == b'\n').count();
    match lines {
        0 => {
            out.extend_from_slice(format!("@{tag} :{server} ACK\r\n").as_bytes());
        }
        1 => tagged(&answer, &tag, out),
        _ => {
            let batch = batches.next();
            out.extend_from_slice(
                format!("@{tag} :{server} BATCH +{batch} labeled-response\r\n").as_bytes(),
            );
            let inner = format!("batch={batch}");
            for line in answer.split_inclusive(|b| *b == b'\n') {
                tagged(line, &inner, out);
            }
            out.extend_from_slice(format!(":{server} BATCH -{batch}\r\n").as_bytes());
        }
    }
}

/// `label=<value>`, the value escaped as a tag value.
pub(crate) fn label_tag(label: &str) -> String {
    let mut tag = String::from("label=");
    chat_proto::irc::escape_tag_value(label, &mut tag);
    tag
}

/// Appends `line` with `tag` (`key=value`) added before its other tags.
pub(crate) fn tagged(line: &[u8], tag: &str, out: &mut BytesMut) {
    out.reserve(line.len() + tag.len() + 2);
    out.extend_from_slice(b"@");
    out.extend_from_slice(tag.as_bytes());
    match line.strip_prefix(b"@") {
        Some(tags) => {
            out.extend_from_slice(b";");
            out.extend_from_slice(tags);
        }
        None => {
            out.extend_from_slice(b" ");
            out.extend_from_slice(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapped(answer: &str, label: &str) -> String {
        let mut out = BytesMut::from("before\r\n");
        out.extend_from_slice(answer.as_bytes());
        wrap(&mut out, 8, "srv", label, &mut Batches::default());
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn nothing_one_line_and_several_lines() {
        assert_eq!(wrapped("", "a1"), "before\r\n@label=a1 :srv ACK\r\n");
        assert_eq!(
            wrapped(":srv 305 me :back\r\n", "a b"),
            "before\r\n@label=a\\sb :srv 305 me :back\r\n"
        );
        assert_eq!(
            wrapped("@time=x :n!u@h JOIN #a\r\n:srv 366 me #a :End\r\n", "z"),
            "before\r\n@label=z :srv BATCH +1 labeled-response\r\n\
             @batch=1;time=x :n!u@h JOIN #a\r\n@batch=1 :srv 366 me #a :End\r\n:srv BATCH -1\r\n"
        );
    }

    #[test]
    fn labels_are_taken_only_when_usable() {
        let tags = |v: &str| vec![("label".to_owned(), v.to_owned())];
        assert_eq!(of(&tags("x")).as_deref(), Some("x"));
        assert_eq!(of(&tags("")), None);
        assert_eq!(of(&tags(&"x".repeat(MAX_LABEL + 1))), None);
        assert_eq!(of(&[]), None);
    }

    #[test]
    fn batch_references_count_in_base_36() {
        let mut batches = Batches::default();
        let refs: Vec<String> = (0..37).map(|_| batches.next()).collect();
        assert_eq!(refs[0], "1");
        assert_eq!(refs[35], "10");
        assert_eq!(refs[36], "11");
    }
}
