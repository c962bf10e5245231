//! The size limits of every field a user writes, said once: the CRD schema carries them as
//! `maxLength`/`maxItems` (so the API server refuses an oversized object before the operator
//! sees it), and validation checks them again first, before anything is built from a field, for
//! objects stored before the limits existed (or by a server that does not enforce them).

/// Longest identity base URL or authenticate URL: a GET carries the base URL, the partition
/// and as many keys as fit 2 048 characters.
pub const MAX_URL: usize = 1024;
/// Longest `partitionGlobalId` (a GUID has 36 characters).
pub const MAX_PARTITION: usize = 128;
/// Longest `userId` (a GUID has 36 characters).
pub const MAX_USER_ID: usize = 128;
/// Longest setting key (the contract's keys have at most about 50 characters). Also what keeps
/// the API server's case-insensitive uniqueness rule within its cost budget.
pub const MAX_KEY: usize = 128;
/// Longest literal setting value.
pub const MAX_VALUE: usize = 4096;
/// Most characters of all literal values of one policy together.
pub const MAX_VALUES_TOTAL: usize = 32 * 1024;
/// Longest name of an object (a Secret): a DNS subdomain.
pub const MAX_NAME: usize = 253;
/// Longest key inside a Secret's data.
pub const MAX_SECRET_KEY: usize = 253;
/// Most OAuth scopes, and the longest one.
pub const MAX_SCOPES: usize = 16;
/// See [`MAX_SCOPES`].
pub const MAX_SCOPE: usize = 128;
/// Longest duration or timestamp text (`resyncInterval`, `suspendUntil`).
pub const MAX_TIME_TEXT: usize = 64;
/// Longest namespace name.
pub const MAX_NAMESPACE: usize = 63;
