//! The MCP vocabulary that every layer speaks, below everything that handles it: JSON-RPC
//! messages, ids and errors; the protocol revisions and their metadata keys; the signed
//! request state of multi-round tool calls. No I/O, no server state.

mod envelope;
pub mod jsonrpc;
pub mod mrtr;
pub mod revision;
