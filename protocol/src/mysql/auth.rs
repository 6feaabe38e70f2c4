//! Login as a state machine: given the server's greeting and the credentials, it yields the
//! payloads to send and consumes the server's replies until OK or ERR.
//!
//! Plugins: `mysql_native_password`, `caching_sha2_password` (fast path, and the full path
//! over TLS or with the server's RSA key), MariaDB's `client_ed25519`, and
//! `mysql_clear_password` over TLS only. The server may switch plugins once it knows the user.

use bytes::{BufMut, Bytes, BytesMut};
use ed25519_dalek::VerifyingKey;
use ed25519_dalek::hazmat::{ExpandedSecretKey, raw_sign};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::{Oaep, PublicKey};
use sha1::{Digest, Sha1};
use sha2::{Sha256, Sha512};

use super::handshake::{
    CLIENT_CAPABILITIES, CapabilityFlags, HandshakeResponse41, HandshakeV10,
    REQUIRED_SERVER_CAPABILITIES, SslRequest,
};
use super::lenenc::ParseError;
use super::response::{
    AUTH_MORE_DATA_HEADER, AuthMoreData, AuthSwitchRequest, EOF_HEADER, ERR_HEADER, ErrPacket,
    OK_HEADER, OkPacket,
};

/// `mysql_native_password`'s scramble: SHA1(pw) XOR SHA1(nonce ‖ SHA1(SHA1(pw))).
///
/// An empty password is sent as an empty response. `nonce` is the 20-byte scramble.
pub fn scramble_native_password(nonce: &[u8], password: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha1::digest(password);
    let stage2 = Sha1::digest(stage1);
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(stage2);
    xor(&stage1, &h.finalize())
}

/// A server's check of a `mysql_native_password` answer: whether `response` is the
/// scramble of `password` for `nonce` (the 20-byte scramble of the greeting or switch).
///
/// An empty password matches only an empty response. The comparison looks at every byte,
/// so its time says nothing about where a wrong answer differs.
pub fn check_native_password(nonce: &[u8], password: &[u8], response: &[u8]) -> bool {
    let expected = scramble_native_password(nonce, password);
    expected.len() == response.len()
        && expected
            .iter()
            .zip(response)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// `caching_sha2_password`'s scramble: SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) ‖ nonce).
///
/// An empty password is sent as an empty response. `nonce` is the 20-byte scramble.
pub fn scramble_caching_sha2(nonce: &[u8], password: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha256::digest(password);
    let stage2 = Sha256::digest(stage1);
    let mut h = Sha256::new();
    h.update(stage2);
    h.update(nonce);
    xor(&stage1, &h.finalize())
}

/// MariaDB `ed25519`'s reply: an Ed25519 signature of the 32-byte nonce, with the key
/// expanded from SHA-512 of the password itself (not of a 32-byte seed).
///
/// This matches MariaDB's `crypto_sign` in `plugin/auth_ed25519/ref10/sign.c`: the first half
/// of SHA-512(password), clamped, is the secret scalar; the second half is the nonce prefix.
pub fn sign_ed25519(nonce: &[u8], password: &[u8]) -> [u8; 64] {
    let key = ed25519_expanded_key(password);
    raw_sign::<Sha512>(&key, nonce, &VerifyingKey::from(&key)).to_bytes()
}

/// The public key MariaDB stores for an `ed25519` user (`authentication_string`, base64).
pub fn ed25519_public_key(password: &[u8]) -> [u8; 32] {
    VerifyingKey::from(&ed25519_expanded_key(password)).to_bytes()
}

fn ed25519_expanded_key(password: &[u8]) -> ExpandedSecretKey {
    let az: [u8; 64] = Sha512::digest(password).into();
    ExpandedSecretKey::from_bytes(&az)
}

/// `caching_sha2_password`'s full authentication without TLS: RSA-OAEP (SHA-1, as MySQL 8
/// uses) of (password ‖ NUL) XOR the nonce, repeated over the length.
pub fn encrypt_password_rsa(
    public_key_pem: &str,
    nonce: &[u8],
    password: &[u8],
) -> Result<Vec<u8>, AuthError> {
    let pem = public_key_pem.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    let key = PublicKey::from_public_key_pem(pem)
        .or_else(|_| PublicKey::from_pkcs1_pem(pem))
        .map_err(|e| AuthError::PublicKey {
            detail: e.to_string(),
        })?;
    if nonce.is_empty() {
        return Err(AuthError::BadNonce {
            plugin: CACHING_SHA2,
            len: 0,
            expected: "20",
        });
    }
    let mut message: Vec<u8> = password.to_vec();
    message.push(0);
    for (b, n) in message.iter_mut().zip(nonce.iter().cycle()) {
        *b ^= n;
    }
    // The padding's random seed comes from the operating system: a fixed seed would leak
    // whether two logins used the same password.
    key.encrypt(&mut getrandom::SysRng, Oaep::<Sha1>::new(), &message)
        .map_err(|e| AuthError::Encrypt {
            detail: e.to_string(),
        })
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

const NATIVE: &str = "mysql_native_password";
const CACHING_SHA2: &str = "caching_sha2_password";
const ED25519: &str = "client_ed25519";
const CLEAR: &str = "mysql_clear_password";

/// caching_sha2_password's AuthMoreData status bytes.
const FAST_AUTH_SUCCESS: u8 = 0x03;
const PERFORM_FULL_AUTH: u8 = 0x04;
/// The byte a client sends to ask for the server's RSA public key.
const REQUEST_PUBLIC_KEY: u8 = 0x02;

/// An authentication plugin this client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthPlugin {
    /// `mysql_native_password`: SHA-1 scramble.
    NativePassword,
    /// `caching_sha2_password`: SHA-256 scramble, full auth over TLS or RSA.
    CachingSha2Password,
    /// MariaDB's `client_ed25519`: an Ed25519 signature of a server nonce.
    Ed25519,
    /// `mysql_clear_password`: the password itself, so over TLS only.
    ClearPassword,
}

impl AuthPlugin {
    /// The plugin for a name the server sent, if this client speaks it.
    pub fn from_name(name: &str) -> Option<AuthPlugin> {
        match name {
            NATIVE => Some(AuthPlugin::NativePassword),
            CACHING_SHA2 => Some(AuthPlugin::CachingSha2Password),
            ED25519 => Some(AuthPlugin::Ed25519),
            CLEAR => Some(AuthPlugin::ClearPassword),
            _ => None,
        }
    }

    /// The plugin's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            AuthPlugin::NativePassword => NATIVE,
            AuthPlugin::CachingSha2Password => CACHING_SHA2,
            AuthPlugin::Ed25519 => ED25519,
            AuthPlugin::ClearPassword => CLEAR,
        }
    }
}

/// A login that cannot go on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The server lacks capabilities this client needs.
    #[error(
        "the server lacks required capabilities 0x{missing:X} (protocol 4.1, secure \
         connection, plugin auth): is it MySQL 5.5 or later, or MariaDB?"
    )]
    MissingServerCapabilities {
        /// The missing flags.
        missing: u64,
    },
    /// TLS was asked for but the server does not offer it.
    #[error("TLS was requested but the server does not offer it (its CLIENT_SSL flag is clear)")]
    TlsUnavailable,
    /// The server asked for a plugin this client does not speak.
    #[error(
        "the server asks for authentication plugin \"{name}\", which this client does not \
         support (supported: mysql_native_password, caching_sha2_password, client_ed25519, \
         mysql_clear_password over TLS)"
    )]
    UnsupportedPlugin {
        /// The plugin's name.
        name: String,
    },
    /// A plugin would send the password in the clear over a connection without TLS.
    #[error(
        "{plugin} would send the password in clear text, and the connection has no TLS: \
         enable TLS, or give the server's RSA public key for caching_sha2_password"
    )]
    CleartextWithoutTls {
        /// The plugin that asked.
        plugin: &'static str,
    },
    /// The server's nonce has the wrong length for the plugin.
    #[error("{plugin}: the server's nonce is {len} bytes, expected {expected}")]
    BadNonce {
        /// The plugin.
        plugin: &'static str,
        /// The length received.
        len: usize,
        /// The length the plugin needs.
        expected: &'static str,
    },
    /// The server's RSA public key (or the configured one) cannot be read.
    #[error("cannot read the server's RSA public key (PEM, SPKI or PKCS#1): {detail}")]
    PublicKey {
        /// The decoder's message.
        detail: String,
    },
    /// The password cannot be encrypted with the server's key.
    #[error("cannot RSA-encrypt the password with the server's key: {detail}")]
    Encrypt {
        /// The library's message.
        detail: String,
    },
    /// The server refused the login.
    #[error("the server refused the login: {0}")]
    Server(ErrPacket),
    /// A packet from the server did not parse.
    #[error(transparent)]
    Malformed(#[from] ParseError),
    /// A packet that makes no sense at this point of the exchange.
    #[error(
        "unexpected packet starting with 0x{first_byte:02X} during {plugin} authentication ({state})"
    )]
    Unexpected {
        /// The plugin in use.
        plugin: &'static str,
        /// What the client was waiting for.
        state: &'static str,
        /// The packet's first byte.
        first_byte: u8,
    },
    /// A packet arrived after the login had already ended.
    #[error("the login has already ended; no more authentication packets are expected")]
    Finished,
}

/// The credentials and session options of one login.
#[derive(Clone)]
pub struct LoginOptions {
    /// The user name.
    pub user: String,
    /// The password (empty for none).
    pub password: String,
    /// The default schema, if any.
    pub database: Option<String>,
    /// Connection attributes, such as `program_name`.
    pub connect_attrs: Vec<(String, String)>,
    /// The collation id (45 = utf8mb4_general_ci, known to MySQL and MariaDB).
    pub charset: u8,
    /// The largest packet the client accepts (what it tells the server).
    pub max_packet_size: u32,
    /// Whether the connection is (or will be) TLS: this sends an SSLRequest first and allows
    /// clear-text passwords.
    pub tls: bool,
    /// The server's RSA public key (PEM), to skip asking for it in caching_sha2_password.
    pub server_public_key_pem: Option<String>,
    /// Whether to offer `CLIENT_LOCAL_FILES`: the client answers `LOAD DATA LOCAL INFILE`.
    pub local_files: bool,
}

impl LoginOptions {
    /// Options for `user` with `password`, no TLS, utf8mb4, a 1 GiB packet limit.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> LoginOptions {
        LoginOptions {
            user: user.into(),
            password: password.into(),
            database: None,
            connect_attrs: Vec::new(),
            charset: 45,
            max_packet_size: 1 << 30,
            tls: false,
            server_public_key_pem: None,
            local_files: false,
        }
    }
}

// By hand, so that the password never reaches a log line.
impl std::fmt::Debug for LoginOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginOptions")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("database", &self.database)
            .field("connect_attrs", &self.connect_attrs)
            .field("charset", &self.charset)
            .field("max_packet_size", &self.max_packet_size)
            .field("tls", &self.tls)
            .field(
                "server_public_key_pem",
                &self.server_public_key_pem.is_some(),
            )
            .field("local_files", &self.local_files)
            .finish()
    }
}

/// What to send first: an SSLRequest (if TLS) and then the HandshakeResponse41.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginStart {
    /// With TLS: the SSLRequest payload, to send with sequence id 1 before the TLS handshake.
    pub ssl_request: Option<Bytes>,
    /// The HandshakeResponse41 payload.
    pub response: Bytes,
    /// The sequence id of `response`: 2 after an SSLRequest, 1 otherwise.
    pub response_seq: u8,
}

/// What the login wants next, after a server packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthStep {
    /// Send this payload, with the sequence id after the packet just received.
    Send(Bytes),
    /// Send nothing; read the next packet.
    Wait,
    /// Logged in.
    Done(OkPacket),
}

/// Where a caching_sha2_password exchange is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sha2Stage {
    /// The scramble is sent; waiting for fast-auth success, full-auth request, OK or ERR.
    Scrambled,
    /// Asked for the server's RSA key.
    AwaitingKey,
    /// The password is sent; waiting for OK or ERR.
    Sent,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Native,
    Sha2(Sha2Stage),
    /// ed25519 as the first plugin: the nonce still has to come (as AuthMoreData).
    Ed25519AwaitingNonce,
    /// A response is sent; only OK, ERR or a switch can come.
    AwaitingResult(&'static str),
    Done,
}

/// A login in progress (sans-IO): feed it each server packet with [`Login::step`].
#[derive(Debug)]
pub struct Login {
    options: LoginOptions,
    capabilities: CapabilityFlags,
    nonce: Vec<u8>,
    state: State,
    switched: bool,
}

impl Login {
    /// Starts a login against `greeting`; returns the machine and the packets to send first.
    pub fn start(
        greeting: &HandshakeV10,
        options: LoginOptions,
    ) -> Result<(Login, LoginStart), AuthError> {
        let server = greeting.capabilities;
        if !server.contains(REQUIRED_SERVER_CAPABILITIES) {
            return Err(AuthError::MissingServerCapabilities {
                missing: REQUIRED_SERVER_CAPABILITIES.without(server).bits(),
            });
        }
        let mut capabilities = CLIENT_CAPABILITIES & server;
        if options.local_files {
            capabilities = capabilities | (CapabilityFlags::LOCAL_FILES & server);
        }
        let mut ssl_request = None;
        if options.tls {
            if !server.contains(CapabilityFlags::SSL) {
                return Err(AuthError::TlsUnavailable);
            }
            capabilities = capabilities | CapabilityFlags::SSL;
            let mut buf = BytesMut::new();
            SslRequest {
                capabilities,
                max_packet_size: options.max_packet_size,
                charset: options.charset,
            }
            .encode(&mut buf);
            ssl_request = Some(buf.freeze());
        }
        // Start with the server's default plugin when we speak it; otherwise native password,
        // and the server switches us to the user's plugin if that is another one.
        let plugin =
            AuthPlugin::from_name(&greeting.auth_plugin).unwrap_or(AuthPlugin::NativePassword);
        let mut login = Login {
            options,
            capabilities,
            nonce: greeting.nonce.clone(),
            state: State::Done,
            switched: false,
        };
        let auth_response = match plugin {
            // The greeting's 20-byte scramble is not ed25519's nonce: the server sends that next.
            AuthPlugin::Ed25519 => {
                login.state = State::Ed25519AwaitingNonce;
                Vec::new()
            }
            _ => login.first_response(plugin)?,
        };
        let response = HandshakeResponse41 {
            capabilities,
            max_packet_size: login.options.max_packet_size,
            charset: login.options.charset,
            user: login.options.user.clone(),
            auth_response,
            database: login.options.database.clone(),
            auth_plugin: plugin.name().to_owned(),
            connect_attrs: login.options.connect_attrs.clone(),
        };
        login.capabilities = response.effective_capabilities();
        let mut buf = BytesMut::new();
        response.encode(&mut buf);
        let response_seq = if ssl_request.is_some() { 2 } else { 1 };
        Ok((
            login,
            LoginStart {
                ssl_request,
                response: buf.freeze(),
                response_seq,
            },
        ))
    }

    /// The capabilities this session runs with (decides, for one, how result sets end).
    pub fn capabilities(&self) -> CapabilityFlags {
        self.capabilities
    }

    /// Whether the server switched the login to another plugin.
    pub fn switched(&self) -> bool {
        self.switched
    }

    /// Consumes one server packet of the login and says what to do next.
    pub fn step(&mut self, payload: &[u8]) -> Result<AuthStep, AuthError> {
        if self.state == State::Done {
            return Err(AuthError::Finished);
        }
        let first_byte = payload.first().copied().unwrap_or_default();
        match first_byte {
            OK_HEADER => {
                self.state = State::Done;
                Ok(AuthStep::Done(OkPacket::parse(payload)?))
            }
            ERR_HEADER => {
                self.state = State::Done;
                Err(AuthError::Server(ErrPacket::parse(payload)?))
            }
            EOF_HEADER => {
                let switch = AuthSwitchRequest::parse(payload)?;
                let plugin = AuthPlugin::from_name(&switch.plugin).ok_or_else(|| {
                    AuthError::UnsupportedPlugin {
                        name: switch.plugin.clone(),
                    }
                })?;
                self.switched = true;
                self.nonce = switch.data.to_vec();
                if plugin == AuthPlugin::Ed25519 {
                    return self.ed25519_reply();
                }
                Ok(AuthStep::Send(Bytes::from(self.first_response(plugin)?)))
            }
            AUTH_MORE_DATA_HEADER => {
                let more = AuthMoreData::parse(payload)?;
                self.more_data(&more.data, first_byte)
            }
            _ => Err(self.unexpected(first_byte)),
        }
    }

    /// The first response of `plugin` to the current nonce, and the state that follows.
    fn first_response(&mut self, plugin: AuthPlugin) -> Result<Vec<u8>, AuthError> {
        let password = self.options.password.as_bytes();
        Ok(match plugin {
            AuthPlugin::NativePassword => {
                self.state = State::Native;
                scramble_native_password(self.scramble(NATIVE)?, password)
            }
            AuthPlugin::CachingSha2Password => {
                self.state = State::Sha2(Sha2Stage::Scrambled);
                scramble_caching_sha2(self.scramble(CACHING_SHA2)?, password)
            }
            AuthPlugin::ClearPassword => {
                if !self.options.tls {
                    return Err(AuthError::CleartextWithoutTls { plugin: CLEAR });
                }
                self.state = State::AwaitingResult(CLEAR);
                nul_terminated(password)
            }
            AuthPlugin::Ed25519 => {
                self.state = State::AwaitingResult(ED25519);
                sign_ed25519(self.ed25519_nonce()?, password).to_vec()
            }
        })
    }

    /// The 20-byte scramble the SHA-based plugins use (switch data may add a trailing NUL).
    fn scramble(&self, plugin: &'static str) -> Result<&[u8], AuthError> {
        self.nonce.get(..20).ok_or(AuthError::BadNonce {
            plugin,
            len: self.nonce.len(),
            expected: "20",
        })
    }

    fn ed25519_nonce(&self) -> Result<&[u8], AuthError> {
        // Exactly 32 bytes; a trailing NUL after them is tolerated, nothing else.
        match self.nonce.len() {
            32 => Ok(&self.nonce),
            33 if self.nonce.last() == Some(&0) => Ok(self.nonce.get(..32).unwrap_or_default()),
            len => Err(AuthError::BadNonce {
                plugin: ED25519,
                len,
                expected: "32",
            }),
        }
    }

    fn ed25519_reply(&mut self) -> Result<AuthStep, AuthError> {
        let signature = sign_ed25519(self.ed25519_nonce()?, self.options.password.as_bytes());
        self.state = State::AwaitingResult(ED25519);
        Ok(AuthStep::Send(Bytes::copy_from_slice(&signature)))
    }

    fn more_data(&mut self, data: &[u8], first_byte: u8) -> Result<AuthStep, AuthError> {
        match self.state {
            State::Sha2(Sha2Stage::Scrambled) => match data {
                [FAST_AUTH_SUCCESS] => {
                    self.state = State::AwaitingResult(CACHING_SHA2);
                    Ok(AuthStep::Wait)
                }
                [PERFORM_FULL_AUTH] => self.sha2_full_auth(),
                _ => Err(self.unexpected(first_byte)),
            },
            State::Sha2(Sha2Stage::AwaitingKey) => {
                let pem = String::from_utf8_lossy(data).into_owned();
                self.sha2_send_encrypted(&pem)
            }
            State::Ed25519AwaitingNonce => {
                self.nonce = data.to_vec();
                self.ed25519_reply()
            }
            _ => Err(self.unexpected(first_byte)),
        }
    }

    fn sha2_full_auth(&mut self) -> Result<AuthStep, AuthError> {
        if self.options.tls {
            self.state = State::Sha2(Sha2Stage::Sent);
            return Ok(AuthStep::Send(Bytes::from(nul_terminated(
                self.options.password.as_bytes(),
            ))));
        }
        if let Some(pem) = self.options.server_public_key_pem.clone() {
            return self.sha2_send_encrypted(&pem);
        }
        self.state = State::Sha2(Sha2Stage::AwaitingKey);
        Ok(AuthStep::Send(Bytes::from_static(&[REQUEST_PUBLIC_KEY])))
    }

    fn sha2_send_encrypted(&mut self, pem: &str) -> Result<AuthStep, AuthError> {
        let nonce = self.scramble(CACHING_SHA2)?.to_vec();
        let encrypted = encrypt_password_rsa(pem, &nonce, self.options.password.as_bytes())?;
        self.state = State::Sha2(Sha2Stage::Sent);
        Ok(AuthStep::Send(Bytes::from(encrypted)))
    }

    fn unexpected(&self, first_byte: u8) -> AuthError {
        let (plugin, state) = match &self.state {
            State::Native => (NATIVE, "waiting for the login result"),
            State::Sha2(Sha2Stage::Scrambled) => (CACHING_SHA2, "waiting for fast-auth status"),
            State::Sha2(Sha2Stage::AwaitingKey) => (CACHING_SHA2, "waiting for the RSA public key"),
            State::Sha2(Sha2Stage::Sent) => (CACHING_SHA2, "waiting for the login result"),
            State::Ed25519AwaitingNonce => (ED25519, "waiting for the nonce"),
            State::AwaitingResult(plugin) => (*plugin, "waiting for the login result"),
            State::Done => ("login", "finished"),
        };
        AuthError::Unexpected {
            plugin,
            state,
            first_byte,
        }
    }
}

fn nul_terminated(password: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(password.len() + 1);
    out.put_slice(password);
    out.put_u8(0);
    out.to_vec()
}
