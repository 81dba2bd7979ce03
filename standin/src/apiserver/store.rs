//! The object store: every object in memory, keyed by resource, namespace and name, and written as one JSON
//! document (`objects.json`, mode 0600) to `--stand-in-data-dir` after each change, atomically (temporary file,
//! fsync, rename). A restart reads it back, so objects persist. etcd is not used for storage (its v3 API is gRPC);
//! the start-up check only requires it to be up.
//!
//! A change that cannot be written is undone in memory and reported (500), so what a client was told matches what
//! is on disk. `resourceVersion` is one counter for the whole store, as etcd's revision is.

use crate::common::write_atomic;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The file inside the data directory.
pub const FILE_NAME: &str = "objects.json";

/// Which object: the resource (`configmaps`, `rbac.authorization.k8s.io/clusterroles`), namespace (`""` for
/// cluster-scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(resource: &str, namespace: &str, name: &str) -> Key {
        Key {
            resource: resource.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Inner {
    revision: u64,
    objects: BTreeMap<Key, Value>,
}

/// The store.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    inner: Mutex<Inner>,
}

/// Changes made under the store's lock.
pub struct Txn<'a> {
    inner: &'a mut Inner,
    backup: Option<Inner>,
}

impl Txn<'_> {
    fn touch(&mut self) {
        if self.backup.is_none() {
            self.backup = Some(self.inner.clone());
        }
    }

    /// One object.
    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.inner.objects.get(key)
    }

    /// The objects of a resource, in one namespace or (None) all, ordered by namespace and name.
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> Vec<&Value> {
        self.inner
            .objects
            .iter()
            .filter(|(k, _)| k.resource == resource && namespace.is_none_or(|n| k.namespace == n))
            .map(|(_, v)| v)
            .collect()
    }

    /// The store's current revision (a list's `resourceVersion`).
    pub fn revision(&self) -> u64 {
        self.inner.revision
    }

    /// Stores `object` under `key` with a new `resourceVersion`, replacing what was there; returns the stored
    /// object.
    pub fn put(&mut self, key: Key, mut object: Value) -> Value {
        self.touch();
        self.inner.revision += 1;
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert(
                "resourceVersion".into(),
                Value::String(self.inner.revision.to_string()),
            );
        }
        self.inner.objects.insert(key, object.clone());
        object
    }

    /// Removes an object; returns it.
    pub fn delete(&mut self, key: &Key) -> Option<Value> {
        if !self.inner.objects.contains_key(key) {
            return None;
        }
        self.touch();
        self.inner.revision += 1;
        self.inner.objects.remove(key)
    }
}

impl Store {
    /// Opens (creating) the data directory and reads the objects written before, if any.
    pub fn open(dir: &Path) -> Result<Store, String> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                format!(
                    "--stand-in-data-dir {}: cannot create it ({e})",
                    dir.display()
                )
            })?;
        let path = dir.join(FILE_NAME);
        let inner = match std::fs::read(&path) {
            Ok(bytes) => parse(&bytes).map_err(|e| {
                format!(
                    "--stand-in-data-dir {}: {FILE_NAME} is damaged ({e}); move it away to start empty",
                    dir.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Inner::default(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        Ok(Store {
            path,
            inner: Mutex::new(inner),
        })
    }

    /// How many objects are stored.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.objects.len()).unwrap_or(0)
    }

    /// Runs `f` under the lock; when it changed something, writes the store (undoing the change if that fails).
    pub fn with<R>(&self, f: impl FnOnce(&mut Txn<'_>) -> R) -> Result<R, String> {
        let mut guard = self
            .inner
            .lock()
            .map_err(|_| "the object store lock is poisoned".to_string())?;
        let mut txn = Txn {
            inner: &mut guard,
            backup: None,
        };
        let result = f(&mut txn);
        if let Some(backup) = txn.backup.take()
            && let Err(e) = write_atomic(&self.path, &serialize(&guard), 0o600)
        {
            *guard = backup;
            return Err(format!("the object store cannot be written: {e}"));
        }
        Ok(result)
    }
}

fn serialize(inner: &Inner) -> Vec<u8> {
    let objects: Vec<Value> = inner
        .objects
        .iter()
        .map(|(k, v)| json!({"resource": k.resource, "object": v}))
        .collect();
    let doc = json!({
        "standIn": "k8s-image demo: the objects of the STAND-IN kube-apiserver (not etcd, not the real API server)",
        "revision": inner.revision,
        "objects": objects,
    });
    let mut bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

fn parse(bytes: &[u8]) -> Result<Inner, String> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let revision = doc
        .get("revision")
        .and_then(Value::as_u64)
        .ok_or("no revision")?;
    let mut objects = BTreeMap::new();
    for entry in doc
        .get("objects")
        .and_then(Value::as_array)
        .ok_or("no objects list")?
    {
        let resource = entry
            .get("resource")
            .and_then(Value::as_str)
            .ok_or("an entry without a resource")?;
        let object = entry.get("object").ok_or("an entry without an object")?;
        let meta = object.get("metadata").ok_or("an object without metadata")?;
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .ok_or("an object without a name")?;
        let namespace = meta
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        objects.insert(Key::new(resource, namespace, name), object.clone());
    }
    Ok(Inner { revision, objects })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_survive_a_reopen_and_revisions_grow() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = Key::new("configmaps", "kube-public", "cluster-info");
        let stored = store
            .with(|t| {
                t.put(
                    key.clone(),
                    json!({"metadata": {"name": "cluster-info", "namespace": "kube-public"}}),
                )
            })
            .unwrap();
        assert_eq!(stored["metadata"]["resourceVersion"], "1");
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        store
            .with(|t| {
                assert_eq!(t.revision(), 1);
                assert!(t.get(&key).is_some());
                assert_eq!(t.list("configmaps", Some("kube-public")).len(), 1);
                assert_eq!(t.list("configmaps", Some("default")).len(), 0);
                assert!(t.delete(&key).is_some());
                assert!(t.delete(&key).is_none());
            })
            .unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.len(), 0);
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(dir.path().join(FILE_NAME))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_failed_write_is_undone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // Make the file's place a directory: the rename fails.
        std::fs::create_dir(dir.path().join(FILE_NAME)).unwrap();
        std::fs::write(dir.path().join(FILE_NAME).join("x"), "").unwrap();
        let r = store.with(|t| {
            t.put(
                Key::new("secrets", "a", "b"),
                json!({"metadata": {"name": "b"}}),
            )
        });
        assert!(r.is_err());
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn a_damaged_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "{").unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(err.contains("damaged"), "{err}");
    }
}
