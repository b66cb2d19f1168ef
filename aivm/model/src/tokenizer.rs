//! Byte-level BPE built from the GGUF vocabulary and merges, with the pre-tokenizers of the
//! models we run and the ChatML template.
//!
//! `smollm` (SmolLM2): every digit is its own piece, then the GPT-2 split. `qwen2`: the
//! Qwen2 split (single digits, newline runs kept apart). Control tokens (`<|im_start|>`, ...)
//! in the text are matched whole before any of this. Letters and numbers are Rust's
//! `char::is_alphabetic` / `char::is_numeric`, close to but not exactly `\p{L}` / `\p{N}`.

use super::sku::TokenizerData;
use std::collections::HashMap;

/// Longest piece BPE runs on in one go (bytes).
pub const MAX_PIECE: usize = 256;

pub struct Tokenizer {
    tokens: Vec<String>,
    /// `(left id, right id) → (rank, merged id)` for every merge whose parts and result are
    /// in the vocabulary.
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// The token of each byte's character (`None`: not in the vocabulary; the byte is dropped).
    byte_ids: [Option<u32>; 256],
    /// Control tokens, longest first, for matching in text.
    specials: Vec<(String, u32)>,
    char_byte: HashMap<char, u8>,
    pre: Pre,
    pub eos: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pre {
    /// GPT-2 split after splitting out single digits (SmolLM2).
    SmolLm,
    /// Qwen2's split.
    Qwen2,
    /// Plain GPT-2 split.
    Gpt2,
}

/// GPT-2's reversible map from bytes to printable characters.
fn byte_chars() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut extra = 0u32;
    for b in 0..256u32 {
        let printable = (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        map[b as usize] = if printable {
            char::from_u32(b).unwrap_or('?')
        } else {
            extra += 1;
            char::from_u32(255 + extra).unwrap_or('?')
        };
    }
    map
}

impl Tokenizer {
    pub fn new(d: &TokenizerData) -> Self {
        let ids: HashMap<&str, u32> = d.tokens.iter().enumerate().map(|(i, t)| (t.as_str(), i as u32)).collect();
        let merges = d
            .merges
            .iter()
            .enumerate()
            .filter_map(|(r, m)| {
                let (a, b) = m.split_once(' ')?;
                Some(((*ids.get(a)?, *ids.get(b)?), (r as u32, *ids.get(format!("{a}{b}").as_str())?)))
            })
            .collect();
        let mut specials: Vec<(String, u32)> =
            d.tokens.iter().zip(&d.types).enumerate().filter(|(_, (t, &ty))| ty == 3 && t.len() > 2).map(|(i, (t, _))| (t.clone(), i as u32)).collect();
        specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        let byte_char = byte_chars();
        let char_byte = byte_char.iter().enumerate().map(|(b, &c)| (c, b as u8)).collect();
        let byte_ids = byte_char.map(|c| ids.get(c.to_string().as_str()).copied());
        let pre = match d.pre.as_str() {
            "smollm" => Pre::SmolLm,
            "qwen2" => Pre::Qwen2,
            _ => Pre::Gpt2,
        };
        Self { tokens: d.tokens.clone(), merges, byte_ids, specials, char_byte, pre, eos: d.eos }
    }

    /// Token ids of `text`, control tokens included.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let hit = self.specials.iter().filter_map(|(s, id)| rest.find(s.as_str()).map(|p| (p, s.len(), *id))).min_by_key(|&(p, l, _)| (p, usize::MAX - l));
            match hit {
                Some((p, len, id)) => {
                    self.encode_plain(&rest[..p], &mut out);
                    out.push(id);
                    rest = &rest[p + len..];
                }
                None => {
                    self.encode_plain(rest, &mut out);
                    break;
                }
            }
        }
        out
    }

    fn encode_plain(&self, text: &str, out: &mut Vec<u32>) {
        for piece in self.pre_tokenize(text) {
            self.bpe(piece, out);
        }
    }

    /// Split text into the pieces BPE runs on.
    fn pre_tokenize<'t>(&self, text: &'t str) -> Vec<&'t str> {
        let mut out = Vec::new();
        match self.pre {
            Pre::SmolLm => {
                // Digits individually, then GPT-2 on the runs between them.
                let mut start = 0;
                for (i, c) in text.char_indices() {
                    if c.is_numeric() {
                        gpt2_split(&text[start..i], &mut out);
                        out.push(&text[i..i + c.len_utf8()]);
                        start = i + c.len_utf8();
                    }
                }
                gpt2_split(&text[start..], &mut out);
            }
            Pre::Gpt2 => gpt2_split(text, &mut out),
            Pre::Qwen2 => qwen2_split(text, &mut out),
        }
        out
    }

    /// Byte-level BPE of one piece: start from the bytes' tokens, then merge the lowest-ranked
    /// adjacent pair (leftmost first) until no pair is a merge. Pieces longer than
    /// [`MAX_PIECE`] bytes are cut at character boundaries first, which bounds the quadratic
    /// merge loop on hostile input (no real word is that long).
    fn bpe(&self, piece: &str, out: &mut Vec<u32>) {
        let mut rest = piece;
        while !rest.is_empty() {
            let mut cut = rest.len().min(MAX_PIECE);
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            let (chunk, tail) = rest.split_at(cut.max(1).min(rest.len()));
            rest = tail;
            let mut parts: Vec<u32> = chunk.bytes().filter_map(|b| self.byte_ids[b as usize]).collect();
            loop {
                let best = parts.windows(2).enumerate().filter_map(|(i, w)| self.merges.get(&(w[0], w[1])).map(|&(rank, merged)| (rank, i, merged))).min();
                let Some((_, i, merged)) = best else { break };
                parts[i] = merged;
                parts.remove(i + 1);
            }
            out.extend(parts);
        }
    }

    /// Text of token ids (invalid UTF-8 replaced); control tokens are written as their names.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            let Some(t) = self.tokens.get(id as usize) else { continue };
            if self.specials.iter().any(|(_, s)| *s == id) {
                bytes.extend(t.as_bytes());
                continue;
            }
            for c in t.chars() {
                match self.char_byte.get(&c) {
                    Some(&b) => bytes.push(b),
                    None => bytes.extend(c.to_string().as_bytes()),
                }
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// One user turn in ChatML with the model's default system prompt, ready for generation.
    pub fn chat_prompt(&self, user: &str) -> String {
        let system = match self.pre {
            Pre::Qwen2 => "You are a helpful assistant.",
            _ => "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
        };
        format!("<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n")
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }
}

fn is_letter(c: char) -> bool {
    c.is_alphabetic()
}
fn is_number(c: char) -> bool {
    c.is_numeric()
}
fn is_other(c: char) -> bool {
    !c.is_whitespace() && !is_letter(c) && !is_number(c)
}

/// End (byte index) of the run of chars from `i` satisfying `f`.
fn run(s: &str, i: usize, f: impl Fn(char) -> bool) -> usize {
    s[i..].char_indices().find(|&(_, c)| !f(c)).map_or(s.len(), |(j, _)| i + j)
}

/// Whitespace: `\s+(?!\S)` (a run, minus its last char when a non-space follows and the run is
/// longer than one), else `\s+`.
fn whitespace(s: &str, i: usize) -> usize {
    let j = run(s, i, char::is_whitespace);
    if j == s.len() {
        return j;
    }
    let last = s[i..j].char_indices().last().map_or(i, |(k, _)| i + k);
    if last > i {
        last
    } else {
        j
    }
}

/// `'s|'t|'re|'ve|'m|'ll|'d` at `i` (GPT-2, case-sensitive), returning its end.
fn contraction(s: &str, i: usize) -> Option<usize> {
    let r = &s[i..];
    ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"].iter().find(|p| r.starts_with(*p)).map(|p| i + p.len())
}

/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
fn gpt2_split<'t>(s: &'t str, out: &mut Vec<&'t str>) {
    let mut i = 0;
    while i < s.len() {
        let mut chars = s[i..].chars();
        let c = chars.next().unwrap_or(' ');
        let next = chars.next();
        let body = if c == ' ' { next.map(|n| (i + 1, n)) } else { Some((i, c)) };
        let end = if let Some(e) = contraction(s, i) {
            e
        } else {
            match body {
                Some((b, n)) if is_letter(n) => run(s, b, is_letter),
                Some((b, n)) if is_number(n) => run(s, b, is_number),
                Some((b, n)) if is_other(n) => run(s, b, is_other),
                _ => whitespace(s, i),
            }
        };
        out.push(&s[i..end]);
        i = end;
    }
}

/// Qwen2: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
fn qwen2_split<'t>(s: &'t str, out: &mut Vec<&'t str>) {
    let mut i = 0;
    while i < s.len() {
        let mut chars = s[i..].chars();
        let c = chars.next().unwrap_or(' ');
        let next = chars.next();
        let lower = s[i..].to_lowercase();
        let end = if let Some(p) = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"].iter().find(|p| lower.starts_with(*p)) {
            i + p.len()
        } else if is_letter(c) {
            run(s, i, is_letter)
        } else if !matches!(c, '\r' | '\n') && !is_number(c) && next.is_some_and(is_letter) {
            run(s, i + c.len_utf8(), is_letter)
        } else if is_number(c) {
            i + c.len_utf8()
        } else if is_other(c) || (c == ' ' && next.is_some_and(is_other)) {
            let b = if c == ' ' { i + 1 } else { i };
            let e = run(s, b, is_other);
            run(s, e, |c| matches!(c, '\r' | '\n'))
        } else {
            // Whitespace: `\s*[\r\n]+` if the run contains a newline, up to its last newline.
            let j = run(s, i, char::is_whitespace);
            match s[i..j].rfind(['\r', '\n']) {
                Some(p) => i + p + 1,
                None => whitespace(s, i),
            }
        };
        out.push(&s[i..end.max(i + c.len_utf8())]);
        i = end.max(i + c.len_utf8());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(f: for<'t> fn(&'t str, &mut Vec<&'t str>), s: &str) -> Vec<String> {
        let mut v = Vec::new();
        f(s, &mut v);
        v.into_iter().map(String::from).collect()
    }

    #[test]
    fn gpt2_split_follows_the_regex() {
        assert_eq!(split(gpt2_split, " hello  world\n\nfoo"), [" hello", " ", " world", "\n", "\n", "foo"]);
        assert_eq!(split(gpt2_split, "it's $3.50!  "), ["it", "'s", " $", "3", ".", "50", "!", "  "]);
        assert_eq!(split(gpt2_split, "a \t b"), ["a", " \t", " b"]);
    }

    #[test]
    fn qwen2_split_keeps_newlines_and_single_digits() {
        assert_eq!(split(qwen2_split, "Hi 123\n\nok"), ["Hi", " ", "1", "2", "3", "\n\n", "ok"]);
    }

    #[test]
    fn byte_map_is_a_bijection() {
        let m = byte_chars();
        let set: std::collections::HashSet<char> = m.iter().copied().collect();
        assert_eq!(set.len(), 256);
        assert_eq!(m[b' ' as usize], 'Ġ');
        assert_eq!(m[b'\n' as usize], 'Ċ');
    }
}
