//! `fencelab storage`: the storage server over real HTTP, and one on a local port for tests.

use super::*;

/// `fencelab storage`: the storage server over real HTTP.
#[derive(Debug, Clone, clap::Args)]
pub struct StorageArgs {
    /// Address to listen on (127.0.0.1 only is the intended use).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// The fencing policy (lease-id: `contrib/lock`'s check).
    #[arg(long, default_value = "lease-id", value_parser = crate::named::FlagParser::<Fencing>::new())]
    pub fencing: Fencing,
    /// Close a connection whose request head has not arrived after this long (0: never).
    #[arg(long, default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,
    /// Answer 408 to a request whose body has not arrived after this long.
    #[arg(long, default_value_t = 10_000)]
    pub body_read_timeout_ms: u64,
}

pub fn storage(args: StorageArgs) -> Result<(), String> {
    let fencing = args.fencing;
    let limits = ServerLimits {
        header_read_timeout: (args.header_read_timeout_ms > 0)
            .then(|| Duration::from_millis(args.header_read_timeout_ms)),
        body_read_timeout: Duration::from_millis(args.body_read_timeout_ms.max(1)),
        ..ServerLimits::default()
    };
    let rt = runtime_multi()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        println!("storage listening on http://{addr} with fencing {fencing}");
        let _ = std::io::stdout().flush();
        let store = Arc::new(Mutex::new(Store::new(fencing)));
        Server::new(store, None, "storage")
            .with_limits(limits)
            .serve(listener)
            .await
            .map_err(|e| format!("storage stopped: {e}"))
    })
}

/// A storage server on a free 127.0.0.1 port, running on `rt` until dropped.
pub struct LocalStorage {
    pub addr: std::net::SocketAddr,
    pub store: Arc<Mutex<Store>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl LocalStorage {
    pub async fn start(fencing: Fencing, limits: ServerLimits) -> Result<LocalStorage, String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let store = Arc::new(Mutex::new(Store::new(fencing)));
        let server = Server::new(store.clone(), None, "storage").with_limits(limits);
        let task = tokio::spawn(server.serve(listener));
        Ok(LocalStorage { addr, store, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn entry(&self, key: &str) -> Option<Entry> {
        self.store.lock().expect("store lock").get(key).cloned()
    }
}

impl Drop for LocalStorage {
    fn drop(&mut self) {
        self.task.abort();
    }
}
