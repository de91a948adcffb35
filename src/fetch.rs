//! Query photos fetched from the web (`lookalike search https://…`, the API's `url`
//! field): bounded in size, time and redirects, image content types only, and never from
//! the machine's own or its network's addresses unless an allow-list says so.
//!
//! A URL given by a shopper makes the server a client of the shopper's choosing (SSRF):
//! `http://169.254.169.254/…` would read the cloud's metadata service, `http://10.0.0.5/`
//! an intranet. So every address a fetch connects to is checked: a URL's literal address
//! before the request, a host name's addresses by the resolver the HTTP client connects
//! through (a second lookup cannot answer differently from the one that was checked, as
//! DNS rebinding would have it), and each redirect as a new URL. Proxies from the
//! environment are ignored: through a proxy the check would see only the proxy.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

/// Why a photo could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("'{url}' is not a usable photo URL: {reason}")]
    BadUrl { url: String, reason: String },
    /// The message names the rule and the host as given, never the address a name
    /// resolved to: that would tell a shopper what an internal name points at.
    #[error(
        "{host}: a {kind} address; fetching from it is refused (an allow-list, \
         --fetch-allow, can permit it)"
    )]
    Refused { host: String, kind: &'static str },
    #[error("could not fetch {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} redirected more than {limit} times")]
    TooManyRedirects { url: String, limit: usize },
    #[error("{url} is not an image (its content type is '{content_type}')")]
    NotAnImage { url: String, content_type: String },
    #[error("{url} is over the {limit_mb} MB download limit")]
    TooLarge { url: String, limit_mb: usize },
    #[error("{url} did not arrive within {seconds} s")]
    Timeout { url: String, seconds: u64 },
    /// The caller's allowance for downloaded bytes (a server's memory budget) is spent.
    #[error("there is no room to download {url} now; try again in a moment")]
    OverBudget { url: String },
}

impl FetchError {
    /// True when the URL (or what it points at) is at fault, false when the network or
    /// the remote server failed.
    pub fn is_user_error(&self) -> bool {
        !matches!(
            self,
            FetchError::Unreachable { .. }
                | FetchError::Timeout { .. }
                | FetchError::OverBudget { .. }
        )
    }
}

/// Limits of one fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Largest photo downloaded, in bytes.
    pub max_bytes: usize,
    /// The whole fetch, redirects included.
    pub timeout: Duration,
    pub max_redirects: usize,
    /// Networks fetched from although refused by default (tests, intranets).
    pub allow: Vec<IpNet>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            max_bytes: 20 * 1024 * 1024,
            timeout: Duration::from_secs(10),
            max_redirects: 5,
            allow: Vec::new(),
        }
    }
}

/// Parse an allow-list entry: an address (`127.0.0.1`) or a network (`10.0.0.0/8`).
pub fn parse_allow(text: &str) -> Result<IpNet, String> {
    let t = text.trim();
    t.parse::<IpNet>()
        .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("'{t}' is not an address or network (e.g. 10.0.0.0/8)"))
}

/// Why an address is refused by default, or `None` for a public one.
pub fn refused_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    }
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, ..) => "unspecified",
        (127, ..) => "loopback",
        (10, ..) | (192, 168, _) => "private",
        (172, b, _) if (16..32).contains(&b) => "private",
        // 169.254.169.254 is the cloud metadata service.
        (169, 254, _) => "link-local (cloud metadata)",
        (100, b, _) if (64..128).contains(&b) => "shared (carrier-grade NAT)",
        (192, 0, 0) => "IETF protocol",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18 | 19, _) => "benchmarking",
        (224..=239, ..) => "multicast",
        (240..=255, ..) => "reserved or broadcast",
        _ => return None,
    })
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    // Addresses that carry an IPv4 one are judged by it: ::ffff:127.0.0.1 is loopback.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return refused_v4(v4);
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64
        return refused_v4(embedded(s[6], s[7]));
    }
    if s[..3] == [0x64, 0xff9b, 1] {
        // Local-use NAT64 (RFC 8215): translates to the operator's own networks.
        return Some("local NAT64");
    }
    if s[..6] == [0, 0, 0, 0, 0xffff, 0] {
        // IPv4-translated (::ffff:0:a.b.c.d, SIIT)
        return refused_v4(embedded(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        // 6to4
        return refused_v4(embedded(s[1], s[2]));
    }
    Some(match s[0] {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_loopback() => "loopback",
        // ::a.b.c.d, deprecated IPv4-compatible
        0 if s[1..6] == [0; 5] => return refused_v4(embedded(s[6], s[7])),
        x if x & 0xfe00 == 0xfc00 => "private (unique local)",
        x if x & 0xffc0 == 0xfe80 => "link-local",
        x if x & 0xffc0 == 0xfec0 => "site-local",
        x if x & 0xff00 == 0xff00 => "multicast",
        0x2001 if s[1] == 0x0db8 => "documentation",
        0x2001 if s[1] == 0 => "Teredo",
        _ => return None,
    })
}

/// The address check, shared by the fetch loop and the resolver the client connects with.
#[derive(Debug)]
struct Guard {
    allow: Vec<IpNet>,
}

impl Guard {
    fn check(&self, host: &str, ip: IpAddr) -> Result<(), FetchError> {
        if self.allow.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        match refused_kind(ip) {
            Some(kind) => Err(FetchError::Refused { host: host.to_string(), kind }),
            None => Ok(()),
        }
    }

    /// A host name's addresses, keeping only those allowed; none allowed is an error
    /// naming the first refused one.
    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, FetchError> {
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| FetchError::Unreachable {
                url: host.to_string(),
                reason: format!("cannot resolve {host}: {e}"),
            })?
            .collect();
        let mut first_refusal = None;
        let mut kept = Vec::new();
        for addr in found {
            match self.check(host, addr.ip()) {
                Ok(()) => kept.push(addr),
                Err(e) => {
                    first_refusal.get_or_insert(e);
                }
            }
        }
        match (kept.is_empty(), first_refusal) {
            (false, _) => Ok(kept),
            (true, Some(e)) => Err(e),
            (true, None) => Err(FetchError::Unreachable {
                url: host.to_string(),
                reason: format!("{host} has no address"),
            }),
        }
    }
}

/// The HTTP client's resolver: only checked addresses are ever connected to.
struct GuardedResolver(Arc<Guard>);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let addrs = guard.resolve(name.as_str(), 0).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Fetches photos by URL within [`FetchOptions`]. Cheap to share; one per server.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    guard: Arc<Guard>,
    opts: FetchOptions,
}

impl Fetcher {
    pub fn new(opts: FetchOptions) -> Result<Self, FetchError> {
        let guard = Arc::new(Guard { allow: opts.allow.clone() });
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver(guard.clone())))
            .connect_timeout(opts.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("lookalike/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Unreachable {
                url: String::new(),
                reason: format!("the HTTP client could not start: {e}"),
            })?;
        Ok(Self { client, guard, opts })
    }

    pub fn options(&self) -> &FetchOptions {
        &self.opts
    }

    /// The photo at `url`, following at most `max_redirects` redirects, each checked.
    pub async fn fetch(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        self.fetch_within(url, &mut |_| true).await
    }

    /// [`Fetcher::fetch`], asking `admit` for each piece of the body as it arrives (the
    /// bytes it will hold: twice the piece's size, the piece and the joined copy): when it
    /// says no, the download stops with `OverBudget`. A server
    /// counts what downloads hold this way, by what arrived rather than what was announced.
    pub async fn fetch_within(
        &self,
        url: &str,
        admit: &mut (dyn FnMut(usize) -> bool + Send),
    ) -> Result<Vec<u8>, FetchError> {
        let seconds = self.opts.timeout.as_secs().max(1);
        tokio::time::timeout(self.opts.timeout, self.fetch_unbounded(url, admit))
            .await
            .unwrap_or_else(|_| Err(FetchError::Timeout { url: url.to_string(), seconds }))
    }

    /// [`Fetcher::fetch`] for callers without a runtime (the CLI).
    pub fn fetch_blocking(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| FetchError::Unreachable { url: url.to_string(), reason: e.to_string() })?;
        runtime.block_on(self.fetch(url))
    }

    async fn fetch_unbounded(
        &self,
        first: &str,
        admit: &mut (dyn FnMut(usize) -> bool + Send),
    ) -> Result<Vec<u8>, FetchError> {
        let mut url = parse_url(first)?;
        let mut hops = 0;
        loop {
            self.check_url(&url).await?;
            let mut res =
                self.client.get(url.clone()).send().await.map_err(|e| self.failed(&url, &e))?;
            let status = res.status();
            // Only these carry a Location to follow; 300 (a choice) and 304 (not
            // modified) are answers, not redirects.
            if matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
                hops += 1;
                if hops > self.opts.max_redirects {
                    return Err(FetchError::TooManyRedirects {
                        url: first.to_string(),
                        limit: self.opts.max_redirects,
                    });
                }
                let location = res
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| FetchError::Status {
                        url: url.to_string(),
                        status: status.as_u16(),
                    })?;
                url = url.join(location).map_err(|e| FetchError::BadUrl {
                    url: location.to_string(),
                    reason: format!("a redirect to it cannot be followed: {e}"),
                })?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(FetchError::BadUrl {
                        url: url.to_string(),
                        reason: "redirected to a scheme other than http or https".into(),
                    });
                }
                continue;
            }
            if !status.is_success() {
                return Err(FetchError::Status { url: url.to_string(), status: status.as_u16() });
            }
            let content_type = res
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if !content_type.starts_with("image/") {
                return Err(FetchError::NotAnImage { url: url.to_string(), content_type });
            }
            let too_large = || FetchError::TooLarge {
                url: url.to_string(),
                limit_mb: self.opts.max_bytes / (1024 * 1024),
            };
            if res.content_length().is_some_and(|n| n > self.opts.max_bytes as u64) {
                return Err(too_large());
            }
            // The pieces as they arrive, joined once at the end into a buffer of the exact
            // size (a growing one would double: 20 MB in 32): `admit` is asked for each
            // piece twice over, the piece and its place in the joined copy.
            let mut pieces = Vec::new();
            let mut total = 0;
            while let Some(chunk) = res.chunk().await.map_err(|e| self.failed(&url, &e))? {
                if total + chunk.len() > self.opts.max_bytes {
                    return Err(too_large());
                }
                if !admit(2 * chunk.len()) {
                    return Err(FetchError::OverBudget { url: url.to_string() });
                }
                total += chunk.len();
                pieces.push(chunk);
            }
            let mut body = Vec::with_capacity(total);
            for piece in pieces {
                body.extend_from_slice(&piece);
            }
            return Ok(body);
        }
    }

    /// A URL's literal address is checked here (the resolver sees only host names); a
    /// host name is looked up here too, for an error that names a refused address
    /// (the resolver repeats the check for the connection itself).
    async fn check_url(&self, url: &reqwest::Url) -> Result<(), FetchError> {
        let port = url.port_or_known_default().unwrap_or(80);
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.guard.check(url.as_str(), IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.guard.check(url.as_str(), IpAddr::V6(ip)),
            Some(url::Host::Domain(name)) => self.guard.resolve(name, port).await.map(|_| ()),
            None => {
                Err(FetchError::BadUrl { url: url.to_string(), reason: "it has no host".into() })
            }
        }
    }

    /// A transport error as a fetch error: the guard's refusal (raised inside the
    /// client's resolver) comes back as itself.
    fn failed(&self, url: &reqwest::Url, e: &reqwest::Error) -> FetchError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(s) = source {
            if let Some(FetchError::Refused { host, kind }) = s.downcast_ref::<FetchError>() {
                return FetchError::Refused { host: host.clone(), kind };
            }
            source = s.source();
        }
        if e.is_timeout() {
            return FetchError::Timeout {
                url: url.to_string(),
                seconds: self.opts.timeout.as_secs().max(1),
            };
        }
        // reqwest's own text is "error sending request"; the cause says what failed.
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            reason = s.to_string();
            source = s.source();
        }
        FetchError::Unreachable { url: url.to_string(), reason }
    }
}

/// True for text that is meant as a URL rather than a file path.
pub fn is_url(text: &str) -> bool {
    let t = text.trim_start().to_ascii_lowercase();
    t.starts_with("http://") || t.starts_with("https://")
}

fn parse_url(text: &str) -> Result<reqwest::Url, FetchError> {
    let bad = |reason: String| FetchError::BadUrl { url: text.to_string(), reason };
    let url = reqwest::Url::parse(text.trim()).map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!(
            "the scheme is '{}'; only http and https are fetched",
            url.scheme()
        )));
    }
    if url.host().is_none() {
        return Err(bad("it has no host".into()));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> Option<&'static str> {
        refused_kind(s.parse().unwrap())
    }

    #[test]
    fn refuses_the_machine_its_network_and_the_metadata_service() {
        for ip in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "64:ff9b:1::808:808",
            "::ffff:0:7f00:1",
            "::ffff:0:a9fe:a9fe",
            "2002:7f00:1::",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
        ] {
            assert!(kind(ip).is_some(), "{ip} should be refused");
        }
        for ip in
            ["8.8.8.8", "172.32.0.1", "151.101.1.69", "2a00:1450:4001:81b::200e", "::ffff:8.8.8.8"]
        {
            assert_eq!(kind(ip), None, "{ip} should be allowed");
        }
    }

    #[test]
    fn the_allow_list_takes_addresses_and_networks() {
        assert_eq!(parse_allow("127.0.0.1").map(|n| n.prefix_len()), Ok(32));
        assert_eq!(parse_allow(" 10.0.0.0/8 ").map(|n| n.prefix_len()), Ok(8));
        assert!(parse_allow("localhost").is_err());
        let guard = Guard { allow: vec![parse_allow("127.0.0.0/8").unwrap()] };
        assert!(guard.check("h", "127.0.0.1".parse().unwrap()).is_ok());
        assert!(guard.check("h", "10.0.0.1".parse().unwrap()).is_err());
    }

    #[test]
    fn only_http_urls_with_a_host_are_taken() {
        assert!(parse_url("file:///etc/passwd").is_err());
        assert!(parse_url("gopher://example.com/").is_err());
        assert!(parse_url("not a url").is_err());
        assert!(parse_url("https://example.com/a.jpg").is_ok());
        assert!(is_url("HTTPS://example.com/a.jpg") && !is_url("photos/a.jpg"));
    }
}
