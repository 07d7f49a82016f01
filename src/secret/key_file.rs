//! The key of the `SecretCipher`: from `LLMGATE_ENCRYPTION_KEY`, else from the key file beside
//! the database (created 0600 on first start), checked against what the database already holds.

use std::path::{Path, PathBuf};

use base64::Engine;

use super::{Secret, SecretCipher};
use crate::db::{Db, DbError};

/// Why no cipher could be loaded. `Invalid` is the operator's to fix.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] DbError),
    #[error("{0}")]
    Failed(String),
}

const ENCRYPTION_CHECK: &str = "encryption_check";
const ENCRYPTION_CHECK_TEXT: &str = "llmgate encryption check";

/// The cipher for upstream credentials: from `encryption_key` (`LLMGATE_ENCRYPTION_KEY`), else
/// from the key file beside the database (created on first start). Refuses a key that does not
/// open what the database already holds, rather than serving with unusable credentials.
pub async fn load_cipher(
    encryption_key: Option<&Secret>,
    db: &Db,
) -> Result<SecretCipher, KeyFileError> {
    let key = match encryption_key {
        Some(encoded) => decode_key(encoded.expose())
            .map_err(|why| KeyFileError::Invalid(format!("LLMGATE_ENCRYPTION_KEY: {why}")))?,
        // Replicas share a PostgreSQL database but no file system: each must be given the
        // same key, or each would seal credentials the others cannot open.
        None if db.is_postgres() => {
            return Err(KeyFileError::Invalid(
                "a PostgreSQL database needs LLMGATE_ENCRYPTION_KEY (the same on every \
                 replica; make one with `openssl rand -base64 32`), since there is no key file \
                 beside it"
                    .into(),
            ));
        }
        None => match db.path() {
            Some(path) => key_from_file(&key_file_for(&path), db).await?,
            // An in-memory database dies with the process, and so may its key.
            None => SecretCipher::generate_key(),
        },
    };
    let cipher = SecretCipher::new(&key);
    match db.get_setting(ENCRYPTION_CHECK).await? {
        Some(sealed) => {
            let opens = base64::engine::general_purpose::STANDARD
                .decode(sealed)
                .ok()
                .and_then(|bytes| cipher.open(&bytes).ok())
                .is_some_and(|text| text.expose() == ENCRYPTION_CHECK_TEXT);
            if !opens {
                return Err(KeyFileError::Invalid(
                    "the encryption key does not match the one this database was written with: \
                     set LLMGATE_ENCRYPTION_KEY (or restore the key file beside the database) to the original key"
                        .into(),
                ));
            }
        }
        None => {
            let sealed = base64::engine::general_purpose::STANDARD
                .encode(cipher.seal(ENCRYPTION_CHECK_TEXT));
            db.put_setting(ENCRYPTION_CHECK, &sealed).await?;
        }
    }
    Ok(cipher)
}

fn decode_key(encoded: &str) -> Result<[u8; 32], String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| "not valid base64".to_owned())?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("must be 32 bytes once decoded, found {}", bytes.len()))
}

/// `llmgate.db` → `llmgate.db.key`.
pub fn key_file_for(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

async fn key_from_file(path: &Path, db: &Db) -> Result<[u8; 32], KeyFileError> {
    match tokio::fs::read_to_string(path).await {
        Ok(text) => decode_key(&text)
            .map_err(|why| KeyFileError::Invalid(format!("{}: {why}", path.display()))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if db.has_sealed_secrets().await? {
                return Err(KeyFileError::Invalid(format!(
                    "the database holds encrypted credentials but the key file {} is missing: \
                     restore it or set LLMGATE_ENCRYPTION_KEY",
                    path.display()
                )));
            }
            let key = SecretCipher::generate_key();
            write_private(path, &base64::engine::general_purpose::STANDARD.encode(key)).map_err(
                |e| {
                    KeyFileError::Failed(format!(
                        "cannot write the key file {}: {e}",
                        path.display()
                    ))
                },
            )?;
            tracing::warn!(
                path = %path.display(),
                "generated an encryption key for upstream credentials; back it up with the database, \
                 or set LLMGATE_ENCRYPTION_KEY"
            );
            Ok(key)
        }
        Err(error) => Err(KeyFileError::Failed(format!(
            "cannot read the key file {}: {error}",
            path.display()
        ))),
    }
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}
