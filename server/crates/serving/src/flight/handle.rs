//! Self-contained statement handles: the SQL, and the parameters bound to it as Arrow IPC.

use base64::Engine;
use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use serde::{Deserialize, Serialize};
use tonic::Status;

/// What a handle carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Handle {
    /// The statement.
    pub sql: String,
    /// Bound parameters (Arrow IPC stream, base64), one execution per row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<String>,
}

impl Handle {
    /// A handle for `sql` without parameters.
    #[must_use]
    pub(super) fn new(sql: &str) -> Self {
        Self { sql: sql.to_string(), params: None }
    }

    /// The handle as bytes.
    pub(super) fn encode(&self) -> Result<Bytes, Status> {
        serde_json::to_vec(self).map(Bytes::from).map_err(|e| Status::internal(format!("encoding a handle: {e}")))
    }

    /// A handle from bytes a client sent back.
    pub(super) fn decode(bytes: &[u8]) -> Result<Self, Status> {
        serde_json::from_slice(bytes).map_err(|_| Status::invalid_argument("not a statement handle of this server"))
    }

    /// Binds `batches` as parameters.
    pub(super) fn with_params(mut self, batches: &[RecordBatch]) -> Result<Self, Status> {
        let Some(first) = batches.first() else {
            self.params = None;
            return Ok(self);
        };
        let mut buf = Vec::new();
        {
            let mut w = StreamWriter::try_new(&mut buf, &first.schema())
                .map_err(|e| Status::invalid_argument(format!("parameters: {e}")))?;
            for b in batches {
                w.write(b).map_err(|e| Status::invalid_argument(format!("parameters: {e}")))?;
            }
            w.finish().map_err(|e| Status::invalid_argument(format!("parameters: {e}")))?;
        }
        self.params = Some(base64::engine::general_purpose::STANDARD.encode(buf));
        Ok(self)
    }

    /// The bound parameter batches.
    pub(super) fn params(&self) -> Result<Vec<RecordBatch>, Status> {
        let Some(b64) = &self.params else { return Ok(Vec::new()) };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| Status::invalid_argument("corrupt parameters in handle"))?;
        let reader = StreamReader::try_new(std::io::Cursor::new(bytes), None)
            .map_err(|_| Status::invalid_argument("corrupt parameters in handle"))?;
        reader.collect::<Result<Vec<_>, _>>().map_err(|_| Status::invalid_argument("corrupt parameters in handle"))
    }
}
