use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::auth::{Role, TokenStore};

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print it (the only time it is shown; only its hash is kept).
    Create {
        #[arg(long, value_enum)]
        role: Role,
        /// A name for the token's holder: a person or a system. Overrides are recorded under it.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        file: TokenFileArgs,
    },
    /// List the tokens: holder, role and creation time (never a secret).
    List {
        #[command(flatten)]
        file: TokenFileArgs,
    },
    /// Delete a token; a running server refuses it from its next request on.
    Revoke {
        /// The token holder's name, as `token list` shows it.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        file: TokenFileArgs,
    },
}

/// Which token file: the dataset's, or one named outright.
#[derive(Debug, clap::Args)]
pub struct TokenFileArgs {
    /// Dataset whose token file to use: a folder or s3://BUCKET/PREFIX [default: the
    /// bundled data/sample].
    #[arg(long, env = "ASSAY_DATA")]
    data: Option<String>,
    /// Token file [default: DATA/.assay/tokens.json; for s3:// data,
    /// ~/.config/assay/tokens/BUCKET/PREFIX/tokens.json].
    #[arg(long, env = "ASSAY_TOKENS")]
    tokens: Option<PathBuf>,
}

impl TokenFileArgs {
    /// The token store, refusing a local dataset folder that does not exist: a typo in
    /// `--data` would otherwise create a folder holding tokens no server reads.
    fn open(self) -> anyhow::Result<TokenStore> {
        let path = match self.tokens {
            Some(path) => path,
            None => {
                let data = super::data_location(self.data)?;
                if !data.contains("://") && !std::path::Path::new(&data).is_dir() {
                    anyhow::bail!(
                        "--data {data}: no such dataset folder (create it with `assay generate` \
                         or `assay ingest`, or name the token file with --tokens)"
                    );
                }
                super::serve::default_tokens(&data)
            }
        };
        Ok(TokenStore::open(path)?)
    }
}

pub fn run(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create { role, name, file } => {
            let store = file.open()?;
            let token = store.create(&name, role)?;
            println!("{token}");
            eprintln!(
                "created {role} token `{name}` in {}",
                store.path().display()
            );
        }
        TokenCommand::List { file } => {
            let store = file.open()?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{:<32} {:<13} created", "name", "role")?;
            for token in store.list() {
                writeln!(
                    out,
                    "{:<32} {:<13} {}",
                    token.name,
                    token.role,
                    token.created_at.format("%Y-%m-%d %H:%M:%S UTC")
                )?;
            }
        }
        TokenCommand::Revoke { name, file } => {
            let store = file.open()?;
            store
                .revoke(&name)
                .with_context(|| format!("token file {}", store.path().display()))?;
            eprintln!("revoked token `{name}` in {}", store.path().display());
        }
    }
    Ok(())
}
