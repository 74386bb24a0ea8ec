//! Checkpoint files: safetensors with a JSON-free, self-describing header.
//!
//! A checkpoint is one safetensors file, so one atomic rename publishes it whole. Its metadata
//! (string → string, part of the safetensors header) holds:
//!
//! - `format`: [`FORMAT`], so other safetensors files are refused by name;
//! - `checksum`: `sha256:<hex>` over every tensor's name, dtype, shape and bytes, in name order,
//!   so a flipped bit anywhere in the data is caught (a truncated file already fails to parse);
//! - whatever the writer adds (the run configuration as TOML, feature widths, input scalers,
//!   training state as JSON).
//!
//! Tensor names follow the model's parameter scheme (docs/ARCHITECTURE.md), so `model.safetensors`
//! loads in PyTorch with `safetensors.torch.load_file`; optimiser moments are stored under
//! `optimizer.m.<param>` / `optimizer.v.<param>` in training-state files only.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use safetensors::View;
use sha2::{Digest, Sha256};

/// The `format` value of every checkpoint this version writes and reads.
pub const FORMAT: &str = "power-perceiver-checkpoint/1";

/// Why a checkpoint could not be written or read. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file system refused.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// Not parseable as safetensors (truncated, or another kind of file).
    #[error("{path}: not a readable checkpoint (truncated or not a safetensors file): {message}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A safetensors file, but not one of ours.
    #[error("{path}: not a power-perceiver checkpoint (metadata `format` is {found})")]
    Format {
        /// The file.
        path: PathBuf,
        /// What `format` said.
        found: String,
    },
    /// The data do not match the stored checksum.
    #[error(
        "{path}: checksum mismatch (stored {stored}, data hash to {computed}): the file is corrupted and was not used"
    )]
    Checksum {
        /// The file.
        path: PathBuf,
        /// The stored checksum.
        stored: String,
        /// The checksum of the data read.
        computed: String,
    },
    /// A metadata entry is missing or does not parse.
    #[error("{path}: metadata `{key}`: {message}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A tensor is missing, extra or of the wrong shape for the model being loaded.
    #[error(
        "{path}: tensor `{name}` {problem}; was this checkpoint written for another model configuration?"
    )]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// A tensor could not be converted or serialised.
    #[error("{path}: {source}")]
    Candle {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: candle_core::Error,
    },
}

type Result<T> = std::result::Result<T, CheckpointError>;

fn checksum<'a>(tensors: impl Iterator<Item = (&'a str, String, &'a [usize], &'a [u8])>) -> String {
    let mut sorted: Vec<_> = tensors.collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut hash = Sha256::new();
    for (name, dtype, shape, data) in sorted {
        hash.update((name.len() as u64).to_le_bytes());
        hash.update(name.as_bytes());
        hash.update(dtype.as_bytes());
        hash.update((shape.len() as u64).to_le_bytes());
        for &d in shape {
            hash.update((d as u64).to_le_bytes());
        }
        hash.update((data.len() as u64).to_le_bytes());
        hash.update(data);
    }
    let digest = hash.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Writes `tensors` and `metadata` (plus `format` and `checksum`) to `path` atomically: a
/// temporary file beside it, flushed to disk, then renamed over `path`.
pub fn write(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: BTreeMap<String, String>,
) -> Result<()> {
    let candle = |source| CheckpointError::Candle {
        path: path.to_owned(),
        source,
    };
    // Contiguous CPU copies, so the bytes hashed are the bytes written.
    let tensors: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(n, t)| Ok((n.clone(), t.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<candle_core::Result<_>>()
        .map_err(candle)?;
    let datas: Vec<_> = tensors.iter().map(|(_, t)| t.data()).collect();
    let sum = checksum(tensors.iter().zip(&datas).map(|((n, t), d)| {
        (
            n.as_str(),
            format!("{:?}", View::dtype(t)),
            t.dims(),
            &d[..],
        )
    }));
    let mut info: HashMap<String, String> = metadata.into_iter().collect();
    info.insert("format".into(), FORMAT.into());
    info.insert("checksum".into(), sum);
    let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(info))
        .map_err(|e| CheckpointError::Unreadable {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename, fsync of the folder).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |action| {
        move |source| CheckpointError::Io {
            path: path.to_owned(),
            action,
            source,
        }
    };
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let mut file = std::fs::File::create(&tmp).map_err(io("creating a temporary file"))?;
    file.write_all(bytes).map_err(io("writing"))?;
    file.sync_all().map_err(io("syncing"))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io("renaming the temporary file into place"))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Make the rename itself durable; not every platform can open a folder, so best effort.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// A checkpoint read and verified.
#[derive(Debug)]
pub struct Checkpoint {
    /// Where it was read from.
    pub path: PathBuf,
    /// Metadata, `format` and `checksum` included.
    pub metadata: BTreeMap<String, String>,
    /// Tensors by name.
    pub tensors: HashMap<String, Tensor>,
}

impl Checkpoint {
    /// Reads `path`, checks its format and checksum, and loads its tensors onto `device`.
    pub fn read(path: &Path, device: &Device) -> Result<Checkpoint> {
        let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
            path: path.to_owned(),
            action: "reading",
            source,
        })?;
        let unreadable = |message: String| CheckpointError::Unreadable {
            path: path.to_owned(),
            message,
        };
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| unreadable(e.to_string()))?;
        let metadata: BTreeMap<String, String> = header
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        match metadata.get("format") {
            Some(f) if f == FORMAT => {}
            other => {
                return Err(CheckpointError::Format {
                    path: path.to_owned(),
                    found: other.map_or("absent".to_owned(), |f| format!("`{f}`")),
                });
            }
        }
        let st =
            safetensors::SafeTensors::deserialize(&bytes).map_err(|e| unreadable(e.to_string()))?;
        let views = st.tensors();
        let computed = checksum(
            views
                .iter()
                .map(|(n, v)| (n.as_str(), format!("{:?}", v.dtype()), v.shape(), v.data())),
        );
        let stored = metadata.get("checksum").cloned().unwrap_or_default();
        if stored != computed {
            return Err(CheckpointError::Checksum {
                path: path.to_owned(),
                stored,
                computed,
            });
        }
        let tensors = views
            .iter()
            .map(|(n, v)| {
                Ok((
                    n.clone(),
                    candle_core::safetensors::Load::load(v, device).map_err(|source| {
                        CheckpointError::Candle {
                            path: path.to_owned(),
                            source,
                        }
                    })?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(Checkpoint {
            path: path.to_owned(),
            metadata,
            tensors,
        })
    }

    /// The metadata entry `key` as text.
    pub fn text(&self, key: &str) -> Result<&str> {
        self.metadata
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| CheckpointError::Metadata {
                path: self.path.clone(),
                key: key.to_owned(),
                message: "missing".into(),
            })
    }

    /// The metadata entry `key`, parsed from JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<T> {
        serde_json::from_str(self.text(key)?).map_err(|e| CheckpointError::Metadata {
            path: self.path.clone(),
            key: key.to_owned(),
            message: e.to_string(),
        })
    }

    /// The metadata entry `key`, parsed from TOML.
    pub fn toml<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<T> {
        toml::from_str(self.text(key)?).map_err(|e| CheckpointError::Metadata {
            path: self.path.clone(),
            key: key.to_owned(),
            message: e.to_string(),
        })
    }

    /// Sets every variable of `varmap` from the tensor of the same name. Each must be present
    /// with the variable's shape; tensors outside the model (optimiser state) are ignored.
    pub fn load_into(&self, varmap: &VarMap) -> Result<()> {
        let fail = |name: &str, problem: String| CheckpointError::Tensor {
            path: self.path.clone(),
            name: name.to_owned(),
            problem,
        };
        let vars = varmap
            .data()
            .lock()
            .map_err(|_| fail("*", "cannot be loaded: parameter map lock poisoned".into()))?;
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        for name in names {
            let var = &vars[name];
            let t = self
                .tensors
                .get(name)
                .ok_or_else(|| fail(name, "is missing".into()))?;
            if t.dims() != var.dims() {
                return Err(fail(
                    name,
                    format!("has shape {:?}, the model needs {:?}", t.dims(), var.dims()),
                ));
            }
            var.set(
                &t.to_dtype(var.dtype())
                    .map_err(|source| CheckpointError::Candle {
                        path: self.path.clone(),
                        source,
                    })?,
            )
            .map_err(|source| CheckpointError::Candle {
                path: self.path.clone(),
                source,
            })?;
        }
        let extra = self
            .tensors
            .keys()
            .filter(|n| !n.starts_with("optimizer.") && !vars.contains_key(*n))
            .min();
        if let Some(name) = extra {
            return Err(fail(name, "is not a parameter of this model".into()));
        }
        Ok(())
    }
}
