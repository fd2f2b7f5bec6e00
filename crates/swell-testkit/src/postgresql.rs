use std::path::PathBuf;
use std::sync::OnceLock;

/// The local PostgreSQL of this test process (see `hack/postgresql.sh`): the one named by
/// `SWELL_POSTGRESQL_*`, or one started on first use with a watchdog that stops it when
/// this process exits. Password authentication for [`Postgres::user`], who owns
/// [`Postgres::db`]; TLS offered with a certificate from a CA made for the run.
#[derive(Debug)]
pub struct Postgres {
    pub host: String,
    pub port: String,
    pub user: String,
    pub password: String,
    pub db: String,
    pub dir: PathBuf,
}

static SHARED: OnceLock<Postgres> = OnceLock::new();

impl Postgres {
    pub fn shared() -> &'static Postgres {
        SHARED.get_or_init(|| {
            crate::from_env_or_started("postgresql.sh", &[], "PostgreSQL", Self::from_exports)
        })
    }

    fn from_exports(get: &dyn Fn(&str) -> anyhow::Result<String>) -> anyhow::Result<Postgres> {
        Ok(Postgres {
            host: get("SWELL_POSTGRESQL_HOST")?,
            port: get("SWELL_POSTGRESQL_PORT")?,
            user: get("SWELL_POSTGRESQL_USER")?,
            password: get("SWELL_POSTGRESQL_PASSWORD")?,
            db: get("SWELL_POSTGRESQL_DB")?,
            dir: PathBuf::from(get("SWELL_POSTGRESQL_DIR")?),
        })
    }

    /// A libpq key/value connection string for the test user (`sslmode` as given).
    pub fn connection(&self, sslmode: &str) -> String {
        format!(
            "host={} port={} user={} password={} dbname={} sslmode={sslmode}",
            self.host, self.port, self.user, self.password, self.db
        )
    }
}
