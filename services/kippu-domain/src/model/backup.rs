//! A logical copy of the whole database: every table's rows, in creation order. The schema
//! holds only `BIGINT` and `TEXT` columns, carried as JSON integers and strings.

use serde::{Deserialize, Serialize};

/// One table's rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDump {
    /// Table name.
    pub name: String,
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Which columns are integers (the others are text).
    pub integer: Vec<bool>,
    /// Rows: each value an integer, a string or null.
    pub rows: Vec<Vec<serde_json::Value>>,
}

/// The whole database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dump {
    /// The newest migration applied where it was taken (restore needs the same schema).
    pub schema_version: i64,
    /// Tables, in creation order.
    pub tables: Vec<TableDump>,
}

impl Dump {
    /// Rows in all tables.
    pub fn row_count(&self) -> usize {
        self.tables.iter().map(|t| t.rows.len()).sum()
    }
}
