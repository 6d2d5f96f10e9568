//! Named coordinator configurations: the Rust stand-in for the .NET DI factories.

use super::error::UnknownCoordinator;
use super::keyed::KeyedWorkCoordinator;
use super::work::WorkCoordinator;
use crate::outcome::Outcome;
use crate::sync::Mutex;
use crate::{Operation, Options, OptionsError};
use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

enum Entry<C> {
    /// Not built yet; `invalid` holds the options' validation error, checked before the
    /// constructor is taken, so a build that would panic leaves the registration in place.
    Registered {
        make: Box<dyn FnOnce() -> C + Send>,
        invalid: Option<OptionsError>,
    },
    Built(C),
    /// Transient: while the constructor runs.
    Building,
}

struct Registry<C> {
    entries: Mutex<BTreeMap<String, Entry<C>>>,
}

impl<C: Clone> Registry<C> {
    fn new() -> Self {
        Registry {
            entries: Mutex::new(BTreeMap::new()),
        }
    }

    fn register(
        &self,
        name: String,
        invalid: Option<OptionsError>,
        make: Box<dyn FnOnce() -> C + Send>,
    ) -> bool {
        let mut entries = self.entries.lock();
        match entries.get(&name) {
            Some(Entry::Built(_) | Entry::Building) => false,
            _ => {
                entries.insert(name, Entry::Registered { make, invalid });
                true
            }
        }
    }

    #[track_caller]
    fn get(&self, name: &str) -> Result<C, UnknownCoordinator> {
        let mut entries = self.entries.lock();
        let Some(entry) = entries.get_mut(name) else {
            return Err(UnknownCoordinator {
                name: name.to_string(),
                known: entries.keys().cloned().collect(),
            });
        };
        match entry {
            Entry::Built(c) => return Ok(c.clone()),
            // Panic before taking the constructor, so the registration survives for a later
            // call (inside a runtime, or after `register` replaced the options).
            Entry::Registered {
                invalid: Some(e), ..
            } => {
                let msg = format!("invalid ephemeral::Options: {e}");
                drop(entries);
                panic!("{msg}");
            }
            Entry::Registered { invalid: None, .. }
                if tokio::runtime::Handle::try_current().is_err() =>
            {
                drop(entries);
                panic!("ephemeral coordinators must be created within a tokio runtime");
            }
            _ => {}
        }
        let Entry::Registered { make, .. } = std::mem::replace(entry, Entry::Building) else {
            unreachable!("a registry entry is never left Building outside `get`")
        };
        // Constructors run no user code; building under the lock keeps one instance per name.
        let c = make();
        *entry = Entry::Built(c.clone());
        Ok(c)
    }

    fn names(&self) -> Vec<String> {
        let entries = self.entries.lock();
        entries.keys().cloned().collect()
    }
}

/// Named [`WorkCoordinator`] configurations, built lazily, one instance per name.
///
/// Like `IHttpClientFactory` in .NET: register named configurations at start-up, ask for a
/// coordinator by name where it is needed. The first [`coordinator`](Self::coordinator) call
/// for a name builds it; later calls return handles to the same instance. The factory is a
/// cheap `Clone`, so it sits well in shared application state, for example axum's `State`:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use axum::{extract::State, http::StatusCode, routing::post, Router};
/// use ephemeral::{CoordinatorFactory, Options, TryEnqueueError};
///
/// #[derive(Clone)]
/// struct AppState {
///     translators: CoordinatorFactory<String>,
/// }
///
/// async fn translate(State(state): State<AppState>, text: String) -> StatusCode {
///     let fast = state.translators.coordinator("fast").expect("registered at start-up");
///     match fast.try_enqueue(text) {
///         Ok(_) => StatusCode::ACCEPTED,
///         Err(TryEnqueueError::Full(_)) => StatusCode::TOO_MANY_REQUESTS,
///         Err(_) => StatusCode::SERVICE_UNAVAILABLE,
///     }
/// }
///
/// let translators = CoordinatorFactory::new();
/// translators.register("fast", |_text: String, _op| async { Ok::<_, std::io::Error>(()) }, Options::default().max_concurrency(32));
/// translators.register("accurate", |_text: String, _op| async { Ok::<_, std::io::Error>(()) }, Options::default().max_concurrency(4));
///
/// let app: Router = Router::new()
///     .route("/translate", post(translate))
///     .with_state(AppState { translators: translators.clone() });
/// # let _ = app;
///
/// // The same instance wherever it is asked for; unknown names list the known ones.
/// assert_eq!(translators.coordinator("fast").unwrap().max_concurrency(), 32);
/// let err = translators.coordinator("slow").unwrap_err();
/// assert_eq!(err.known(), ["accurate", "fast"]);
/// # }
/// ```
pub struct CoordinatorFactory<T: Send + 'static> {
    registry: Arc<Registry<WorkCoordinator<T>>>,
}

impl<T: Send + 'static> Clone for CoordinatorFactory<T> {
    fn clone(&self) -> Self {
        CoordinatorFactory {
            registry: self.registry.clone(),
        }
    }
}

impl<T: Send + 'static> Default for CoordinatorFactory<T> {
    fn default() -> Self {
        CoordinatorFactory::new()
    }
}

impl<T: Send + 'static> CoordinatorFactory<T> {
    /// An empty factory.
    #[must_use]
    pub fn new() -> Self {
        CoordinatorFactory {
            registry: Arc::new(Registry::new()),
        }
    }

    /// Registers a configuration under `name`. Returns `false` (and changes nothing) if a
    /// coordinator was already built under that name; otherwise a previous, unbuilt
    /// registration is replaced. Options are validated when the coordinator is built.
    pub fn register<F, Fut>(&self, name: impl Into<String>, body: F, options: Options) -> bool
    where
        F: Fn(T, Operation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output: Outcome<()>> + Send + 'static,
    {
        let invalid = options.validate().err();
        self.registry.register(
            name.into(),
            invalid,
            Box::new(move || WorkCoordinator::new(body, options)),
        )
    }

    /// The coordinator registered under `name`, built on first use.
    ///
    /// # Errors
    ///
    /// [`UnknownCoordinator`] (listing the registered names) for a name never registered.
    ///
    /// # Panics
    ///
    /// On first use, outside a tokio runtime or on invalid options.
    #[track_caller]
    pub fn coordinator(&self, name: &str) -> Result<WorkCoordinator<T>, UnknownCoordinator> {
        self.registry.get(name)
    }

    /// The registered names, sorted.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        self.registry.names()
    }
}

impl<T: Send + 'static> fmt::Debug for CoordinatorFactory<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoordinatorFactory")
            .field("names", &self.names())
            .finish()
    }
}

/// Named [`KeyedWorkCoordinator`] configurations, built lazily, one instance per name.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use ephemeral::{KeyedCoordinatorFactory, Options};
///
/// let factory: KeyedCoordinatorFactory<String, (String, u32)> = KeyedCoordinatorFactory::new();
/// factory.register(
///     "commands",
///     |cmd: &(String, u32)| cmd.0.clone(),
///     |_cmd, _op| async { Ok::<_, std::io::Error>(()) },
///     Options::default().max_pending_per_key(10),
/// );
/// let commands = factory.coordinator("commands").unwrap();
/// commands.enqueue(("alice".into(), 1)).await.unwrap();
/// # }
/// ```
pub struct KeyedCoordinatorFactory<K, T>
where
    K: Hash + Eq + Clone + Display + Send + Sync + 'static,
    T: Send + 'static,
{
    registry: Arc<Registry<KeyedWorkCoordinator<K, T>>>,
}

impl<K, T> Clone for KeyedCoordinatorFactory<K, T>
where
    K: Hash + Eq + Clone + Display + Send + Sync + 'static,
    T: Send + 'static,
{
    fn clone(&self) -> Self {
        KeyedCoordinatorFactory {
            registry: self.registry.clone(),
        }
    }
}

impl<K, T> Default for KeyedCoordinatorFactory<K, T>
where
    K: Hash + Eq + Clone + Display + Send + Sync + 'static,
    T: Send + 'static,
{
    fn default() -> Self {
        KeyedCoordinatorFactory::new()
    }
}

impl<K, T> KeyedCoordinatorFactory<K, T>
where
    K: Hash + Eq + Clone + Display + Send + Sync + 'static,
    T: Send + 'static,
{
    /// An empty factory.
    #[must_use]
    pub fn new() -> Self {
        KeyedCoordinatorFactory {
            registry: Arc::new(Registry::new()),
        }
    }

    /// Registers a keyed configuration under `name` (same rules as
    /// [`CoordinatorFactory::register`]).
    pub fn register<KF, F, Fut>(
        &self,
        name: impl Into<String>,
        key_fn: KF,
        body: F,
        options: Options,
    ) -> bool
    where
        KF: Fn(&T) -> K + Send + Sync + 'static,
        F: Fn(T, Operation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output: Outcome<()>> + Send + 'static,
    {
        let invalid = options.validate().err();
        self.registry.register(
            name.into(),
            invalid,
            Box::new(move || KeyedWorkCoordinator::new(key_fn, body, options)),
        )
    }

    /// The keyed coordinator registered under `name`, built on first use.
    ///
    /// # Errors
    ///
    /// [`UnknownCoordinator`] (listing the registered names) for a name never registered.
    ///
    /// # Panics
    ///
    /// On first use, outside a tokio runtime or on invalid options.
    #[track_caller]
    pub fn coordinator(
        &self,
        name: &str,
    ) -> Result<KeyedWorkCoordinator<K, T>, UnknownCoordinator> {
        self.registry.get(name)
    }

    /// The registered names, sorted.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        self.registry.names()
    }
}

impl<K, T> fmt::Debug for KeyedCoordinatorFactory<K, T>
where
    K: Hash + Eq + Clone + Display + Send + Sync + 'static,
    T: Send + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCoordinatorFactory")
            .field("names", &self.names())
            .finish()
    }
}
