use std::path::PathBuf;
use std::sync::OnceLock;

/// The local MariaDB of this test process (see `hack/mariadb.sh`): the one named by
/// `SWELL_MYSQL_*`, or one started on first use with a watchdog that stops it when this
/// process exits. Password authentication for [`Mysql::user`], who may do anything in
/// [`Mysql::db`]; TLS offered with a certificate for 127.0.0.1 from the CA [`Mysql::tls_ca`]
/// made for the run; the socket [`Mysql::socket`] too.
#[derive(Debug)]
pub struct Mysql {
    pub host: String,
    pub port: String,
    pub socket: String,
    pub user: String,
    pub password: String,
    pub db: String,
    /// `None` for [`Mysql::without_tls`].
    pub tls_ca: Option<PathBuf>,
    pub dir: PathBuf,
}

static SHARED: OnceLock<Mysql> = OnceLock::new();
static WITHOUT_TLS: OnceLock<Mysql> = OnceLock::new();

impl Mysql {
    pub fn shared() -> &'static Mysql {
        SHARED.get_or_init(|| {
            crate::from_env_or_started("mariadb.sh", &[], "MariaDB", Self::from_exports)
        })
    }

    /// A second server, started for this process, that offers no TLS (`--no-tls`).
    pub fn without_tls() -> &'static Mysql {
        WITHOUT_TLS.get_or_init(|| {
            let pid = std::process::id().to_string();
            let args = ["up", "--owner-pid", pid.as_str(), "--no-tls"];
            let vars = crate::run_script("mariadb.sh", &args)
                .unwrap_or_else(|e| panic!("no local MariaDB without TLS: {e:#}"));
            Self::from_exports(&|k: &str| {
                vars.iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| anyhow::anyhow!("{k} not set"))
            })
            .unwrap_or_else(|e| panic!("hack/mariadb.sh --no-tls: {e:#}"))
        })
    }

    fn from_exports(get: &dyn Fn(&str) -> anyhow::Result<String>) -> anyhow::Result<Mysql> {
        Ok(Mysql {
            host: get("SWELL_MYSQL_HOST")?,
            port: get("SWELL_MYSQL_PORT")?,
            socket: get("SWELL_MYSQL_SOCKET")?,
            user: get("SWELL_MYSQL_USER")?,
            password: get("SWELL_MYSQL_PASSWORD")?,
            db: get("SWELL_MYSQL_DB")?,
            tls_ca: get("SWELL_MYSQL_TLS_CA").ok().map(PathBuf::from),
            dir: PathBuf::from(get("SWELL_MYSQL_DIR")?),
        })
    }

    /// A go-sql-driver DSN for the test user over TCP, `params` after the `?` (may be empty).
    pub fn dsn(&self, params: &str) -> String {
        let q = if params.is_empty() { "" } else { "?" };
        format!(
            "{}:{}@tcp({}:{})/{}{q}{params}",
            self.user, self.password, self.host, self.port, self.db
        )
    }
}
