use std::path::PathBuf;

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
        /// Dataset whose token file to use: a folder or s3://BUCKET/PREFIX [default: the
        /// bundled data/sample].
        #[arg(long, env = "ASSAY_DATA")]
        data: Option<String>,
        /// Token file [default: DATA/.assay/tokens.json; for s3:// data,
        /// ~/.config/assay/tokens/BUCKET/PREFIX/tokens.json].
        #[arg(long, env = "ASSAY_TOKENS")]
        tokens: Option<PathBuf>,
    },
}

pub fn run(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            role,
            name,
            data,
            tokens,
        } => {
            let data = super::data_location(data);
            let path = tokens.unwrap_or_else(|| super::serve::default_tokens(&data));
            let store = TokenStore::open(&path)?;
            let token = store.create(&name, role)?;
            println!("{token}");
            eprintln!("created {role} token `{name}` in {}", path.display());
            Ok(())
        }
    }
}
