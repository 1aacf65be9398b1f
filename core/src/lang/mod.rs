//! How sqlchat reads text: one SQL scanner, one tokenizer, one identifier splitter, one stemmer,
//! one set of word classes (stop words, number, date and time words), and the schema index built
//! with them. Extraction, the ranker, the offline engine and the chart hints read questions,
//! schemas and SQL through this module only, so that a word means the same to all of them.

pub mod index;
pub mod sql;
pub mod text;
pub mod words;

pub use index::{SchemaIndex, View};
pub use text::{identifier_words, stem, tokenize, Token};
