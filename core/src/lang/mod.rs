//! How sqlchat reads text: one tokenizer, one identifier splitter, one stemmer, one set of word
//! classes (stop words, number, date and time words), and the schema index built with them. The
//! ranker, the offline engine and the chart hints read questions and schemas through this module
//! only, so that a word means the same to all of them.

pub mod index;
pub mod text;
pub mod words;

pub use index::{SchemaIndex, View};
pub use text::{identifier_words, stem, tokenize, Token};
