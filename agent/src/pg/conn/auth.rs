//! The startup exchange: StartupMessage, authentication (trust, cleartext, md5,
//! SCRAM-SHA-256), then the server's parameters up to the first ReadyForQuery.

use fallible_iterator::FallibleIterator as _;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;

use super::error::{DbError, Kind};
use super::options::{ConnectOptions, Password};
use super::wire::{Backend, Wire};

/// What the server told us during startup.
pub(crate) struct Startup {
    pub(crate) server_version: String,
}

/// Runs the startup exchange; `replication` asks for a physical walsender session.
pub(crate) async fn startup(
    wire: &mut Wire,
    opts: &ConnectOptions,
    replication: bool,
) -> Result<Startup, Kind> {
    let mut params = vec![
        ("user", opts.user()),
        ("database", opts.dbname()),
        ("client_encoding", "UTF8"),
    ];
    if let Some(name) = opts.application_name_value() {
        params.push(("application_name", name));
    }
    if replication {
        params.push(("replication", "true"));
    }
    frontend::startup_message(params, wire.out()).map_err(encode_error)?;
    wire.flush().await?;
    authenticate(wire, opts).await?;

    let mut server_version = String::new();
    loop {
        match read(wire).await? {
            Message::ReadyForQuery(_) => return Ok(Startup { server_version }),
            Message::ParameterStatus(body) => {
                if body.name().map_err(protocol)? == "server_version" {
                    server_version = body.value().map_err(protocol)?.to_string();
                }
            }
            Message::BackendKeyData(_) => {}
            _ => return Err(unexpected("startup")),
        }
    }
}

async fn authenticate(wire: &mut Wire, opts: &ConnectOptions) -> Result<(), Kind> {
    let password = || {
        opts.password_value().ok_or_else(|| Kind::MissingPassword {
            user: opts.user().to_string(),
        })
    };
    loop {
        match read(wire).await? {
            Message::AuthenticationOk => return Ok(()),
            Message::AuthenticationCleartextPassword => {
                frontend::password_message(password()?.as_bytes(), wire.out())
                    .map_err(encode_error)?;
                wire.flush().await?;
            }
            Message::AuthenticationMd5Password(body) => {
                let hash = md5_hash(opts.user().as_bytes(), password()?.as_bytes(), body.salt());
                frontend::password_message(hash.as_bytes(), wire.out()).map_err(encode_error)?;
                wire.flush().await?;
            }
            Message::AuthenticationSasl(body) => {
                let mut offers_scram = false;
                let mut mechanisms = body.mechanisms();
                while let Some(mechanism) = mechanisms.next().map_err(protocol)? {
                    offers_scram |= mechanism == SCRAM_SHA_256;
                }
                if !offers_scram {
                    return Err(Kind::UnsupportedAuth(
                        "a SASL mechanism other than SCRAM-SHA-256".to_string(),
                    ));
                }
                scram(wire, password()?).await?;
            }
            Message::AuthenticationKerberosV5 => return Err(unsupported("Kerberos V5")),
            Message::AuthenticationScmCredential => return Err(unsupported("SCM credential")),
            Message::AuthenticationGss | Message::AuthenticationGssContinue(_) => {
                return Err(unsupported("GSSAPI"));
            }
            Message::AuthenticationSspi => return Err(unsupported("SSPI")),
            _ => return Err(unexpected("authentication")),
        }
    }
}

/// SCRAM-SHA-256 without channel binding (GS2 flag 'n'): valid even when the server
/// also offers SCRAM-SHA-256-PLUS over TLS, since we do not claim to support binding.
async fn scram(wire: &mut Wire, password: &Password) -> Result<(), Kind> {
    let mut scram = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
    frontend::sasl_initial_response(SCRAM_SHA_256, scram.message(), wire.out())
        .map_err(encode_error)?;
    wire.flush().await?;
    let Message::AuthenticationSaslContinue(body) = read(wire).await? else {
        return Err(unexpected("SCRAM (expected SASLContinue)"));
    };
    scram.update(body.data()).map_err(Kind::Scram)?;
    frontend::sasl_response(scram.message(), wire.out()).map_err(encode_error)?;
    wire.flush().await?;
    let Message::AuthenticationSaslFinal(body) = read(wire).await? else {
        return Err(unexpected("SCRAM (expected SASLFinal)"));
    };
    // Verifies the server's signature: a server that does not know the password fails here.
    scram.finish(body.data()).map_err(Kind::Scram)
}

/// The next message that is not a notice; an ErrorResponse becomes the error.
pub(crate) async fn read(wire: &mut Wire) -> Result<Message, Kind> {
    loop {
        match wire.read().await? {
            Backend::Message(Message::ErrorResponse(body)) => {
                let db = DbError::parse(&mut body.fields()).map_err(protocol)?;
                return Err(Kind::Server {
                    db: Box::new(db),
                    explain: None,
                });
            }
            Backend::Message(Message::NoticeResponse(body)) => log_notice(&body),
            Backend::Message(message) => return Ok(message),
            Backend::CopyBothResponse => return Err(unexpected("startup (CopyBothResponse)")),
        }
    }
}

/// Passes a server notice on to the log.
pub(crate) fn log_notice(body: &postgres_protocol::message::backend::NoticeResponseBody) {
    match DbError::parse(&mut body.fields()) {
        Ok(db) => {
            tracing::info!(severity = %db.severity, code = %db.code, "postgres: {}", db.message)
        }
        Err(e) => tracing::debug!(error = %e, "unreadable notice from postgres"),
    }
}

fn unsupported(method: &str) -> Kind {
    Kind::UnsupportedAuth(method.to_string())
}

fn unexpected(during: &str) -> Kind {
    Kind::Protocol(format!("unexpected message during {during}"))
}

fn protocol(e: std::io::Error) -> Kind {
    Kind::Protocol(e.to_string())
}

fn encode_error(e: std::io::Error) -> Kind {
    Kind::Protocol(format!("cannot encode a message: {e}"))
}
