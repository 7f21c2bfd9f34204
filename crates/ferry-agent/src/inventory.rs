//! What the agent reports about its device: name, operating system, domain, architecture,
//! addresses. Everything comes from cheap local sources (procfs, environment variables, one
//! `ver`); nothing here may hang a session start, so the one process has a short timeout and
//! every source has a fallback.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use ferry_proto::agent::Inventory;

/// Collects the inventory. `hub_host` (`host`, `host:port`, `[v6]:port` or a URL) picks the
/// first address: the one this device reaches the hub from, found by "connecting" a UDP
/// socket (no packet is sent). Resolving the name may block briefly, so that part runs on
/// tokio's blocking pool.
/// `users_command`: see [`logged_on_users`].
pub async fn collect(hub_host: Option<&str>, users_command: &[String]) -> Inventory {
    let hostname = hostname();
    let (os_name, os_version) = os().await;
    let domain = domain(&hostname);
    let mut ips = Vec::new();
    if let Some(host) = hub_host {
        let host = host.to_owned();
        if let Ok(Some(ip)) = tokio::task::spawn_blocking(move || route_to(&host)).await {
            ips.push(ip.to_string());
        }
    }
    for ip in other_addresses() {
        let ip = ip.to_string();
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    let users = logged_on_users(&hostname, users_command).await;
    Inventory {
        hostname,
        os_name,
        os_version,
        domain,
        arch: std::env::consts::ARCH.to_owned(),
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        ips,
        users,
    }
}

// ----- logged-on users ----------------------------------------------------------------------

/// Users logged on now, as `DOMAIN\name` (a local account as `HOSTNAME\name`), sorted and
/// without repeats; empty when they cannot be read.
pub async fn logged_on_users(hostname: &str, users_command: &[String]) -> Vec<String> {
    read_users(hostname, users_command)
        .await
        .unwrap_or_default()
}

/// Users logged on now, or `None` when they cannot be read (which is not "nobody": a watcher
/// for logons must not take a failed read for everyone logging off). `users_command`, when
/// not empty, is asked instead of the platform: one user per line.
pub async fn read_users(hostname: &str, users_command: &[String]) -> Option<Vec<String>> {
    let (cmd, host, first_word) = match users_command {
        [program, args @ ..] => {
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(args);
            (cmd, hostname, false)
        }
        [] => platform_users_command(hostname),
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let out = crate::exec::process::run_process(cmd, VER_TIMEOUT, 64 * 1024, &cancel)
        .await
        .ok()?;
    if out.exit_code != Some(0) {
        return None;
    }
    // `who` prints the name first on each line; a users command and the Windows script print
    // only the name, which may hold spaces.
    Some(qualified_users(
        out.stdout.lines().filter_map(|l| match first_word {
            true => l.split_whitespace().next().map(str::to_owned),
            false => Some(l.to_owned()),
        }),
        host,
    ))
}

/// The owners of every `explorer.exe`: one per interactive session, console and remote
/// desktop alike. A constant script: nothing from outside goes into it. Names come back
/// qualified (`DOMAIN\name`).
#[cfg(windows)]
fn platform_users_command(_hostname: &str) -> (tokio::process::Command, &str, bool) {
    const USERS_SCRIPT: &str = "$ErrorActionPreference = 'Stop'; Get-CimInstance Win32_Process -Filter \"Name='explorer.exe'\" | \
        ForEach-Object { $o = Invoke-CimMethod -InputObject $_ -MethodName GetOwner -ErrorAction SilentlyContinue; \
        if ($o -and $o.ReturnValue -eq 0) { $o.Domain + '\\' + $o.User } }";
    let mut cmd = tokio::process::Command::new(crate::exec::default_powershell());
    cmd.args(["-NoProfile", "-NonInteractive", "-Command", USERS_SCRIPT]);
    (cmd, "", false)
}

/// `who`: one line per login session, the user name first.
#[cfg(not(windows))]
fn platform_users_command(hostname: &str) -> (tokio::process::Command, &str, bool) {
    let mut cmd = tokio::process::Command::new("who");
    cmd.env("LC_ALL", "C");
    (cmd, hostname, true)
}

/// `DOMAIN\name` for each user: kept as is when qualified, `user@realm` as `realm\user`,
/// a bare name under `host`; sorted, without repeats, at most 64.
pub fn qualified_users(names: impl Iterator<Item = String>, host: &str) -> Vec<String> {
    let mut users: Vec<String> = names
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty() && !n.chars().any(char::is_control) && n.len() <= 255)
        .map(|n| {
            if n.contains('\\') {
                n
            } else if let Some((user, realm)) = n.split_once('@') {
                format!("{realm}\\{user}")
            } else {
                format!("{host}\\{n}")
            }
        })
        .collect();
    users.sort_by_key(|u| u.to_lowercase());
    users.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    users.truncate(64);
    users
}

// ----- hostname -----------------------------------------------------------------------------

#[cfg(windows)]
pub fn hostname() -> String {
    std::env::var("COMPUTERNAME").unwrap_or_default()
}

#[cfg(not(windows))]
pub fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty())
        .or_else(gethostname)
        .unwrap_or_default()
}

#[cfg(unix)]
fn gethostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for `buf.len()` bytes; gethostname writes at most that many.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).trim().to_owned();
    (!name.is_empty()).then_some(name)
}

#[cfg(not(any(unix, windows)))]
fn gethostname() -> Option<String> {
    None
}

// ----- operating system ---------------------------------------------------------------------

#[cfg(windows)]
async fn os() -> (String, String) {
    let mut cmd = tokio::process::Command::new(crate::exec::package::system32("cmd.exe"));
    cmd.args(["/d", "/c", "ver"]);
    let cancel = tokio_util::sync::CancellationToken::new();
    let version = match crate::exec::process::run_process(cmd, VER_TIMEOUT, 4096, &cancel).await {
        Ok(out) => parse_ver(&out.stdout).unwrap_or_default(),
        Err(_) => String::new(),
    };
    ("Windows".to_owned(), version)
}

#[cfg(not(windows))]
async fn os() -> (String, String) {
    let release = ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|text| parse_os_release(&text))
        .unwrap_or_default();
    let name = release
        .name
        .unwrap_or_else(|| capitalised(std::env::consts::OS));
    let version = release.version_id.unwrap_or_else(|| {
        // No os-release: the kernel's version is better than nothing.
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    });
    (name, version)
}

#[cfg(not(windows))]
fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The fields of os-release(5) the inventory uses.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct OsRelease {
    pub name: Option<String>,
    pub version_id: Option<String>,
}

/// Parses os-release(5): `KEY=value` lines, values optionally in double or single quotes
/// (with `\` escapes inside double quotes), `#` comments; empty values count as absent.
pub fn parse_os_release(text: &str) -> OsRelease {
    let mut release = OsRelease::default();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = unquote(value.trim());
        let slot = match key.trim() {
            "NAME" => &mut release.name,
            "VERSION_ID" => &mut release.version_id,
            _ => continue,
        };
        *slot = (!value.is_empty()).then_some(value);
    }
    release
}

fn unquote(value: &str) -> String {
    if let Some(inner) = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .filter(|_| value.len() >= 2)
    {
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            } else {
                out.push(c);
            }
        }
        return out;
    }
    if let Some(inner) = value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .filter(|_| value.len() >= 2)
    {
        return inner.to_owned();
    }
    value.to_owned()
}

/// The version in `cmd /c ver`'s answer, to three parts as ConfigMgr reports it:
/// `Microsoft Windows [Version 10.0.19045.3803]` → `10.0.19045`. The word "Version" is
/// localised (and may be lower case), so the number is found by shape.
pub fn parse_ver(output: &str) -> Option<String> {
    let start = output.find('[')?;
    let end = start + output[start..].find(']')?;
    let version = output[start + 1..end]
        .split_whitespace()
        .rev()
        .find(|w| w.contains('.') && w.chars().all(|c| c.is_ascii_digit() || c == '.'))?;
    Some(version.split('.').take(3).collect::<Vec<_>>().join("."))
}

// ----- domain -------------------------------------------------------------------------------

#[cfg(windows)]
fn domain(hostname: &str) -> Option<String> {
    windows_domain(
        std::env::var("USERDNSDOMAIN").ok().as_deref(),
        std::env::var("USERDOMAIN").ok().as_deref(),
        hostname,
    )
}

/// Windows: the DNS domain when the environment has it, else the NetBIOS domain unless it is
/// just the machine's own name (a local account) or `WORKGROUP` (no domain at all).
#[cfg_attr(not(windows), allow(dead_code))]
fn windows_domain(dns: Option<&str>, netbios: Option<&str>, hostname: &str) -> Option<String> {
    let present = |v: Option<&str>| {
        v.map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    present(dns).or_else(|| {
        present(netbios)
            .filter(|d| !d.eq_ignore_ascii_case(hostname) && !d.eq_ignore_ascii_case("WORKGROUP"))
    })
}

#[cfg(not(windows))]
fn domain(hostname: &str) -> Option<String> {
    let nis = std::fs::read_to_string("/proc/sys/kernel/domainname").ok();
    unix_domain(hostname, nis.as_deref())
}

/// Elsewhere: what follows the first dot of a fully qualified hostname, else the kernel's
/// domain name unless it is unset (`(none)`).
#[cfg_attr(windows, allow(dead_code))]
fn unix_domain(hostname: &str, kernel_domain: Option<&str>) -> Option<String> {
    if let Some((_, domain)) = hostname.split_once('.')
        && !domain.is_empty()
    {
        return Some(domain.to_owned());
    }
    kernel_domain
        .map(str::trim)
        .filter(|d| !d.is_empty() && *d != "(none)")
        .map(str::to_owned)
}

// ----- addresses ----------------------------------------------------------------------------

/// The local address the OS would use to reach `hub`: a UDP socket "connected" to it picks a
/// route without sending anything.
fn route_to(hub: &str) -> Option<IpAddr> {
    let (host, port) = host_and_port(hub)?;
    let target = (host.as_str(), port).to_socket_addrs().ok()?.next()?;
    let local: SocketAddr = match target {
        SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = std::net::UdpSocket::bind(local).ok()?;
    socket.connect(target).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// `https://host:8443/x`, `host:8443`, `[::1]:8443`, `::1`, `host` → host and port (443 when
/// none is given: the port only picks a route, it is never dialled).
pub fn host_and_port(hub: &str) -> Option<(String, u16)> {
    let rest = hub.split_once("://").map_or(hub, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if authority.is_empty() {
        return None;
    }
    if let Some(inner) = authority.strip_prefix('[') {
        let (host, after) = inner.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => 443,
        };
        return Some((host.to_owned(), port));
    }
    if authority.matches(':').count() > 1 {
        // A bare IPv6 address.
        return Some((authority.to_owned(), 443));
    }
    match authority.split_once(':') {
        Some((host, port)) => Some((host.to_owned(), port.parse().ok()?)),
        None => Some((authority.to_owned(), 443)),
    }
}

#[cfg(target_os = "linux")]
fn other_addresses() -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = std::fs::read_to_string("/proc/net/fib_trie")
        .map(|t| parse_fib_trie_local(&t))
        .unwrap_or_default()
        .into_iter()
        .map(IpAddr::V4)
        .collect();
    ips.extend(
        std::fs::read_to_string("/proc/net/if_inet6")
            .map(|t| parse_if_inet6_global(&t))
            .unwrap_or_default()
            .into_iter()
            .map(IpAddr::V6),
    );
    let mut seen = Vec::new();
    ips.retain(|ip| {
        let new = !seen.contains(ip);
        seen.push(*ip);
        new
    });
    ips
}

#[cfg(not(target_os = "linux"))]
fn other_addresses() -> Vec<IpAddr> {
    Vec::new()
}

/// The device's own IPv4 addresses from `/proc/net/fib_trie`: an address line (`|-- a.b.c.d`)
/// followed by a `/32 host LOCAL` line, loopback left out, in order, without repeats (the
/// file lists each address once per routing table).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_fib_trie_local(text: &str) -> Vec<std::net::Ipv4Addr> {
    let mut out = Vec::new();
    let mut last: Option<std::net::Ipv4Addr> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(addr) = line.strip_prefix("|-- ") {
            last = addr.trim().parse().ok();
        } else if line.starts_with("/32 host LOCAL")
            && let Some(ip) = last
            && !ip.is_loopback()
            && !out.contains(&ip)
        {
            out.push(ip);
        }
    }
    out
}

/// The device's global IPv6 addresses from `/proc/net/if_inet6` (scope 00; link-local and
/// loopback left out).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_if_inet6_global(text: &str) -> Vec<std::net::Ipv6Addr> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (hex, scope) = (fields.first()?, fields.get(3)?);
            if *scope != "00" || hex.len() != 32 {
                return None;
            }
            let bits = u128::from_str_radix(hex, 16).ok()?;
            Some(std::net::Ipv6Addr::from(bits))
        })
        .collect()
}

/// How long `ver` (or the logged-on users' query) may take before it is left empty.
const VER_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {

    #[test]
    fn logged_on_users_are_qualified_sorted_and_unique() {
        let names = [
            "alice",
            "CORP\\bob",
            "carol@corp.example",
            "alice",
            "",
            "Alice",
        ];
        assert_eq!(
            qualified_users(names.iter().map(|s| s.to_string()), "PC-1"),
            vec!["corp.example\\carol", "CORP\\bob", "PC-1\\alice"]
        );
    }

    use super::*;

    #[test]
    fn os_release_gives_name_and_version_id_unquoted() {
        let text = "# comment\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n";
        assert_eq!(
            parse_os_release(text),
            OsRelease {
                name: Some("Debian GNU/Linux".into()),
                version_id: Some("12".into()),
            }
        );
    }

    #[test]
    fn os_release_accepts_single_quotes_bare_values_and_escapes() {
        let text = "NAME='Alpine Linux'\nVERSION_ID=3.19.1\n";
        let r = parse_os_release(text);
        assert_eq!(r.name.as_deref(), Some("Alpine Linux"));
        assert_eq!(r.version_id.as_deref(), Some("3.19.1"));
        let r = parse_os_release("NAME=\"A \\\"B\\\"\"\nVERSION_ID=\"\"\n");
        assert_eq!(r.name.as_deref(), Some("A \"B\""));
        assert_eq!(r.version_id, None);
    }

    #[test]
    fn ver_output_gives_three_part_versions_in_any_language() {
        assert_eq!(
            parse_ver("\r\nMicrosoft Windows [Version 10.0.19045.3803]\r\n").as_deref(),
            Some("10.0.19045")
        );
        assert_eq!(
            parse_ver("Microsoft Windows [version 10.0.22631.2861]").as_deref(),
            Some("10.0.22631")
        );
        assert_eq!(
            parse_ver("Microsoft Windows [Versão 6.1.7601]").as_deref(),
            Some("6.1.7601")
        );
        assert_eq!(parse_ver("nothing here"), None);
    }

    #[test]
    fn windows_domain_prefers_dns_and_ignores_the_machine_name_and_workgroup() {
        assert_eq!(
            windows_domain(Some("CORP.EXAMPLE.COM"), Some("CORP"), "PC1").as_deref(),
            Some("CORP.EXAMPLE.COM")
        );
        assert_eq!(
            windows_domain(None, Some("CORP"), "PC1").as_deref(),
            Some("CORP")
        );
        assert_eq!(windows_domain(None, Some("pc1"), "PC1"), None);
        assert_eq!(windows_domain(None, Some("WORKGROUP"), "PC1"), None);
        assert_eq!(windows_domain(Some(" "), None, "PC1"), None);
    }

    #[test]
    fn unix_domain_comes_from_the_fqdn_or_the_kernel() {
        assert_eq!(
            unix_domain("web1.corp.example", Some("(none)\n")).as_deref(),
            Some("corp.example")
        );
        assert_eq!(
            unix_domain("web1", Some("nis.example\n")).as_deref(),
            Some("nis.example")
        );
        assert_eq!(unix_domain("web1", Some("(none)\n")), None);
        assert_eq!(unix_domain("web1", None), None);
    }

    #[test]
    fn hub_addresses_give_host_and_port() {
        let hp = |s| host_and_port(s);
        assert_eq!(hp("hub.example"), Some(("hub.example".into(), 443)));
        assert_eq!(hp("hub.example:8443"), Some(("hub.example".into(), 8443)));
        assert_eq!(
            hp("https://u@hub.example:8443/api?x"),
            Some(("hub.example".into(), 8443))
        );
        assert_eq!(hp("[::1]:9"), Some(("::1".into(), 9)));
        assert_eq!(hp("::1"), Some(("::1".into(), 443)));
        assert_eq!(hp("https://"), None);
        assert_eq!(hp("hub:notaport"), None);
    }

    #[test]
    fn fib_trie_gives_local_addresses_without_loopback_or_repeats() {
        let text = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n     +-- 10.0.0.0/8 2 0 2\n        |-- 10.0.2.15\n           /32 host LOCAL\n        |-- 10.255.255.255\n           /32 link BROADCAST\n     |-- 127.0.0.1\n        /32 host LOCAL\nLocal:\n  +-- 10.0.0.0/8\n        |-- 10.0.2.15\n           /32 host LOCAL\n";
        assert_eq!(
            parse_fib_trie_local(text),
            [std::net::Ipv4Addr::new(10, 0, 2, 15)]
        );
    }

    #[test]
    fn if_inet6_gives_global_addresses_only() {
        let text = "00000000000000000000000000000001 01 80 10 80       lo\nfe800000000000000a0027fffe4e1ab1 02 40 20 80     eth0\n20010db8000000000000000000000001 02 40 00 80     eth0\n";
        assert_eq!(
            parse_if_inet6_global(text),
            ["2001:db8::1".parse::<std::net::Ipv6Addr>().expect("valid")]
        );
    }

    #[tokio::test]
    async fn collect_reports_this_device_with_the_route_to_the_hub_first() {
        let inv = collect(Some("127.0.0.1:9"), &[]).await;
        assert!(!inv.hostname.is_empty());
        assert!(!inv.os_name.is_empty());
        assert_eq!(inv.arch, std::env::consts::ARCH);
        assert_eq!(inv.agent_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(inv.ips.first().map(String::as_str), Some("127.0.0.1"));
        let unique: std::collections::HashSet<&String> = inv.ips.iter().collect();
        assert_eq!(unique.len(), inv.ips.len(), "{:?}", inv.ips);
    }
}
