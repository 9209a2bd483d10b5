#!/usr/bin/env bash
# Install goapp on a Debian/Ubuntu machine: the binary, its user and directories, its
# settings and token secret, KataGo (the AI opponent and reviews), the systemd units
# (server + daily backup) and the Nginx site.
# Safe to run again: it keeps goapp.toml (but for site_url, when --site-url is given), the
# secret, the certificate and the data, and restarts goapp on the new binary (the previous
# one stays as goapp.prev for --rollback).
#
#   sudo appliance/install.sh --site-url https://go.example.org [--cert FILE --key FILE]
#   sudo appliance/install.sh --rollback          # back to the previous binary
#   sudo appliance/install.sh --uninstall [--purge]
#
# Options:
#   --binary FILE     the goapp binary (default: dist/goapp next to this script's folder)
#   --site-url URL    public origin, https://HOST[:PORT] (default: the one in goapp.toml, else
#                     https://$(hostname -f)); sets site_url and the Nginx server_name
#   --cert FILE       TLS certificate chain for Nginx; --key FILE its private key.
#                     Without them a self-signed certificate is made (once) in
#                     /etc/goapp/tls/; replace it with a real one (Let's Encrypt: see
#                     docs/deployment.md) and run the script again with --cert/--key.
#   --no-nginx        do not install the Nginx site
#   --http-port N     Nginx's plain-HTTP port, which only redirects to HTTPS (default 80)
#   --https-port N    Nginx's HTTPS port (default: the port of an https:// site URL, else 443)
#   --no-engine       do not install KataGo (goapp then plays with GNU Go when it is
#                     installed, else offers no computer opponent)
#   --engine-wheel FILE  the katrain wheel that carries KataGo, for a machine without
#                     network; --engine-model FILE a KataGo model (.bin.gz). Both are handed
#                     to `goapp engine setup`, which installs KataGo into
#                     /var/lib/goapp/katago as the goapp user (with Debian's OpenCL packages
#                     ocl-icd-libopencl1 and pocl-opencl-icd)
#   --no-start        install files, the user and ownership, but neither enable, start
#                     nor reload anything (prints what it would run)
#   --rollback        swap /usr/local/bin/goapp and goapp.prev, restart goapp
#   --uninstall       stop and remove the binary, the units and the Nginx site; keep
#                     /etc/goapp and /var/lib/goapp (the data) unless --purge is given
#   --purge           with --uninstall: also remove /etc/goapp, /var/lib/goapp, the user
#
# DESTDIR=/some/root installs every file under that folder instead of /, and runs no
# system command (useradd, chown, systemctl, nginx): it prints them. Used by the tests and
# for building packages.
set -euo pipefail

DESTDIR="${DESTDIR:-}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$(dirname "$here")"

binary="$src/dist/goapp"
site_url=""
cert=""
key=""
nginx=1
http_port=80
https_port=""
engine=1
engine_wheel=""
engine_model=""
start=1
action=install
purge=0

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit "${1:-0}"
}

die() {
    echo "install.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="${2:?--binary needs a file}"; shift 2 ;;
        --site-url) site_url="${2:?--site-url needs a URL}"; shift 2 ;;
        --cert) cert="${2:?--cert needs a file}"; shift 2 ;;
        --key) key="${2:?--key needs a file}"; shift 2 ;;
        --no-nginx) nginx=0; shift ;;
        --http-port) http_port="${2:?--http-port needs a number}"; shift 2 ;;
        --https-port) https_port="${2:?--https-port needs a number}"; shift 2 ;;
        --no-engine) engine=0; shift ;;
        --engine-wheel) engine_wheel="${2:?--engine-wheel needs a file}"; shift 2 ;;
        --engine-model) engine_model="${2:?--engine-model needs a file}"; shift 2 ;;
        --no-start) start=0; shift ;;
        --rollback) action=rollback; shift ;;
        --uninstall) action=uninstall; shift ;;
        --purge) purge=1; shift ;;
        -h | --help) usage 0 ;;
        *) echo "install.sh: unknown option $1" >&2; usage 2 >&2 ;;
    esac
done

# What the OpenCL build of KataGo needs: the loader, and PoCL, the OpenCL driver for CPUs.
ENGINE_DEBS="ocl-icd-libopencl1 pocl-opencl-icd"

BIN="$DESTDIR/usr/local/bin"
ETC="$DESTDIR/etc/goapp"
STATE="$DESTDIR/var/lib/goapp"
UNITS="$DESTDIR/etc/systemd/system"
NGINX="$DESTDIR/etc/nginx"
DOC="$DESTDIR/usr/local/share/doc/goapp"

# System commands run only on a real install (no DESTDIR); service commands (systemctl,
# nginx reload) also not with --no-start. Either way, what is skipped is printed.
system() {
    if [ -n "$DESTDIR" ]; then
        echo "would run: $*"
    else
        echo "+ $*"
        "$@"
    fi
}

service() {
    if [ -n "$DESTDIR" ] || [ "$start" = 0 ]; then
        echo "would run: $*"
    else
        echo "+ $*"
        "$@"
    fi
}

# install -m MODE SRC DEST, only when the content or mode differs (keeps mtimes on re-runs).
put() {
    local mode="$1" from="$2" to="$3"
    mkdir -p "$(dirname "$to")"
    if [ -f "$to" ] && cmp -s "$from" "$to"; then
        chmod "$mode" "$to"
    else
        install -m "$mode" "$from" "$to"
        echo "installed $to"
    fi
}

random_hex() {
    if command -v openssl >/dev/null 2>&1; then
        openssl rand -hex 32
    else
        od -An -N32 -tx1 /dev/urandom | tr -d ' \n'
        echo
    fi
}

# The site URL goes into sed expressions, goapp.toml and the Nginx site: accept only
# http(s)://HOST[:PORT], HOST made of DNS labels (letters, digits, hyphens) separated by
# dots, so that no character can break out of any of them.
check_site_url() {
    local url="$1" label='[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
    local re="^https?://$label(\\.$label)*(:[0-9]{1,5})?$"
    case "$url" in
        http://* | https://*) ;;
        *) die "--site-url must start with https:// (or http://): '$url'" ;;
    esac
    if ! [[ "$url" =~ $re ]]; then
        die "--site-url must be http(s)://HOST[:PORT] with a host of letters, digits, dots" \
            "and hyphens, and nothing after it (no path, query, user or spaces): '$url'"
    fi
    local port="${url##*:}"
    if [[ "$port" =~ ^[0-9]+$ ]] && { [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; }; then
        die "--site-url: port $port is not between 1 and 65535"
    fi
}

check_port() {
    if ! [[ "$2" =~ ^[0-9]{1,5}$ ]] || [ "$2" -lt 1 ] || [ "$2" -gt 65535 ]; then
        die "$1 must be a port number (1-65535): '$2'"
    fi
}

# A key = integer of goapp.toml (the default when it is not set).
toml_int() {
    local value
    value="$(sed -n "s/^$1 *= *\([0-9][0-9]*\) *\(#.*\)\{0,1\}$/\1/p" "$ETC/goapp.toml" | head -n 1)"
    echo "${value:-$2}"
}

require_root() {
    if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
        die "run as root (sudo), or set DESTDIR to install into a folder"
    fi
}

# -- install ---------------------------------------------------------------------------------

install_all() {
    require_root
    [ -f "$binary" ] || die "no binary at $binary (build it with: make binary)"
    for f in goapp.service goapp-backup.service goapp-backup.timer; do
        [ -f "$src/systemd/$f" ] || die "missing $src/systemd/$f"
    done
    # The site URL: --site-url, else the one goapp.toml has, else this machine's name.
    if [ -z "$site_url" ] && [ -f "$ETC/goapp.toml" ]; then
        site_url="$(sed -n 's/^site_url *= *"\(.*\)"$/\1/p' "$ETC/goapp.toml" | head -n 1)"
    fi
    if [ -z "$site_url" ]; then
        site_url="https://$(hostname -f 2>/dev/null || hostname)"
    fi
    site_url="${site_url%/}"
    check_site_url "$site_url"
    local host="${site_url#*://}"
    host="${host%%:*}"
    if { [ -n "$cert" ] && [ -z "$key" ]; } || { [ -z "$cert" ] && [ -n "$key" ]; }; then
        die "--cert and --key go together"
    fi
    check_port --http-port "$http_port"
    if [ -z "$https_port" ]; then
        case "$site_url" in
            https://*:*) https_port="${site_url##*:}" ;;
            *) https_port=443 ;;
        esac
    fi
    check_port --https-port "$https_port"
    local f
    for f in "$engine_wheel" "$engine_model"; do
        if [ -n "$f" ] && [ ! -f "$f" ]; then die "no such file: $f"; fi
    done

    # Packages: Nginx (the site), OpenSSL (secret, self-signed certificate), and the OpenCL
    # loader and CPU driver the KataGo build of `goapp engine setup` runs on.
    if [ -z "$DESTDIR" ]; then
        local missing=""
        if [ "$nginx" = 1 ] && ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
            missing="$missing nginx"
        fi
        command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
        if [ "$engine" = 1 ]; then
            local pkg
            for pkg in $ENGINE_DEBS; do
                dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" ||
                    missing="$missing $pkg"
            done
        fi
        if [ -n "$missing" ]; then
            system apt-get update -qq
            # shellcheck disable=SC2086 # word splitting wanted
            system env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
        fi
    fi

    # The user and the folders.
    if [ -z "$DESTDIR" ] && id goapp >/dev/null 2>&1; then
        :
    else
        system useradd --system --user-group --home-dir /var/lib/goapp --no-create-home \
            --shell /usr/sbin/nologin --comment "goapp server" goapp
    fi
    mkdir -p "$STATE/backups" "$ETC"
    chmod 0750 "$STATE" "$STATE/backups" "$ETC"
    system chown goapp:goapp /var/lib/goapp /var/lib/goapp/backups
    system chown root:goapp /etc/goapp

    # The binary; the one it replaces becomes goapp.prev (not when it is the same file).
    mkdir -p "$BIN"
    if [ -f "$BIN/goapp" ] && ! cmp -s "$binary" "$BIN/goapp"; then
        cp -p "$BIN/goapp" "$BIN/goapp.prev"
        echo "kept the previous binary as /usr/local/bin/goapp.prev"
    fi
    put 0755 "$binary" "$BIN/goapp"

    # Settings (written once: later edits are the admin's) and the token secret.
    if [ ! -f "$ETC/goapp.toml" ]; then
        cat >"$ETC/goapp.toml" <<EOF
# goapp settings: every key, its environment variable and default are listed by
# \`goapp serve --help\` and in docs/configuration.md. Restart after a change:
# systemctl restart goapp
site_url = "$site_url"
host = "127.0.0.1"
port = 4000
ws_port = 4001
data_dir = "/var/lib/goapp"
# Nginx on this box: believe its X-Forwarded-For, so per-IP limits see the client.
trusted_proxies = "127.0.0.1"
# database_url = "postgresql://goapp@localhost/goapp"
# The token secret is /etc/goapp/jwt_secret, handed to the service by systemd
# (LoadCredential=, GOAPP_JWT_SECRET_FILE): do not put it here.
EOF
        chmod 0640 "$ETC/goapp.toml"
        echo "wrote /etc/goapp/goapp.toml"
    elif ! grep -qxF "site_url = \"$site_url\"" "$ETC/goapp.toml"; then
        if grep -q '^site_url *=' "$ETC/goapp.toml"; then
            sed -i "s|^site_url *=.*|site_url = \"$site_url\"|" "$ETC/goapp.toml"
        else
            sed -i "1i site_url = \"$site_url\"" "$ETC/goapp.toml"
        fi
        echo "set site_url = \"$site_url\" in /etc/goapp/goapp.toml"
    fi
    system chown root:goapp /etc/goapp/goapp.toml
    if [ "$engine" = 1 ]; then
        install_engine
    fi

    if [ ! -s "$ETC/jwt_secret" ]; then
        (umask 077 && random_hex >"$ETC/jwt_secret")
        echo "generated /etc/goapp/jwt_secret"
    fi
    chmod 0600 "$ETC/jwt_secret"
    system chown root:root /etc/goapp/jwt_secret

    # systemd units.
    for f in goapp.service goapp-backup.service goapp-backup.timer; do
        put 0644 "$src/systemd/$f" "$UNITS/$f"
    done
    if [ -f "$src/docs/deployment.md" ]; then
        put 0644 "$src/docs/deployment.md" "$DOC/deployment.md"
    fi

    # Nginx: the certificate (self-signed once when none is given), then the site.
    if [ "$nginx" = 1 ]; then
        install_nginx "$host"
    fi

    service systemctl daemon-reload
    service systemctl enable goapp.service goapp-backup.timer
    service systemctl restart goapp.service
    service systemctl start goapp-backup.timer
    if [ "$nginx" = 1 ]; then
        service nginx -t
        service systemctl reload-or-restart nginx.service
    fi
    echo "goapp is installed: $site_url (systemctl status goapp; journalctl -u goapp)"
}

# KataGo with a model, by the binary's `goapp engine setup`, run as the goapp user into the
# service's state directory, where the unit lets it write: KataGo's home, caches and
# OpenCL tuning all stay under /var/lib/goapp/katago (see systemd/goapp.service).
install_engine() {
    local dest=/var/lib/goapp/katago incoming=/var/lib/goapp/katago/incoming
    local args=(--dest "$dest")
    mkdir -p "$STATE/katago"
    chmod 0750 "$STATE/katago"
    system chown goapp:goapp "$dest"
    # The files given may be unreadable for goapp (in root's home): it gets copies.
    if [ -n "$engine_wheel" ] || [ -n "$engine_model" ]; then
        mkdir -p "$DESTDIR$incoming"
        if [ -n "$engine_wheel" ]; then
            cp "$engine_wheel" "$DESTDIR$incoming/"
            args+=(--wheel "$incoming/$(basename "$engine_wheel")")
        fi
        if [ -n "$engine_model" ]; then
            cp "$engine_model" "$DESTDIR$incoming/"
            args+=(--model "$incoming/$(basename "$engine_model")")
        fi
        system chown -R goapp:goapp "$incoming"
    fi
    if ! system runuser -u goapp -- env TMPDIR=/tmp /usr/local/bin/goapp engine setup "${args[@]}"; then
        die "KataGo could not be installed (see above). Without network, pass" \
            "--engine-wheel and --engine-model; or skip it with --no-engine"
    fi
    rm -rf -- "$DESTDIR$incoming"
}

install_nginx() {
    local host="$1" cert_path key_path tmp
    if [ -n "$cert" ]; then
        if [ ! -f "$cert" ] || [ ! -f "$key" ]; then die "no such --cert/--key file"; fi
        cert_path="$cert"
        key_path="$key"
    else
        cert_path=/etc/goapp/tls/goapp.crt
        key_path=/etc/goapp/tls/goapp.key
        if [ ! -f "$ETC/tls/goapp.crt" ] || [ ! -f "$ETC/tls/goapp.key" ]; then
            command -v openssl >/dev/null 2>&1 || die "openssl is needed for a self-signed certificate"
            mkdir -p "$ETC/tls"
            chmod 0750 "$ETC/tls"
            (umask 077 && openssl req -x509 -newkey rsa:2048 -nodes -days 825 \
                -subj "/CN=$host" -addext "subjectAltName=DNS:$host" \
                -keyout "$ETC/tls/goapp.key" -out "$ETC/tls/goapp.crt" 2>/dev/null)
            chmod 0644 "$ETC/tls/goapp.crt"
            chmod 0600 "$ETC/tls/goapp.key"
            echo "made a self-signed certificate for $host in /etc/goapp/tls/ (replace it: --cert/--key)"
        fi
    fi
    # goapp's ports, from goapp.toml (ws_port = 0: WebSocket on the HTTP port's /ws).
    local port ws_port redirect="https://\$host\$request_uri"
    port="$(toml_int port 4000)"
    ws_port="$(toml_int ws_port 4001)"
    [ "$ws_port" != 0 ] || ws_port="$port"
    if [ "$https_port" != 443 ]; then redirect="https://\$host:$https_port\$request_uri"; fi
    tmp="$(mktemp)"
    sed -e "s|go\.example\.org|$host|g" \
        -e "s|/etc/goapp/tls/goapp\.crt|$cert_path|g" \
        -e "s|/etc/goapp/tls/goapp\.key|$key_path|g" \
        -e "s|127\.0\.0\.1:4000 |127.0.0.1:$port |" \
        -e "s|127\.0\.0\.1:4001 |127.0.0.1:$ws_port |" \
        -e "s|^\( *listen \(\[::\]:\)\{0,1\}\)80;|\1$http_port;|" \
        -e "s|^\( *listen \(\[::\]:\)\{0,1\}\)443 |\1$https_port |" \
        -e "s|return 301 https://\$host\$request_uri;|return 301 $redirect;|" \
        "$src/nginx/goapp.conf" >"$tmp"
    put 0644 "$tmp" "$NGINX/sites-available/goapp.conf"
    rm -f "$tmp"
    mkdir -p "$NGINX/sites-enabled"
    ln -sfn ../sites-available/goapp.conf "$NGINX/sites-enabled/goapp.conf"
}

# -- rollback --------------------------------------------------------------------------------

rollback() {
    require_root
    [ -f "$BIN/goapp.prev" ] || die "no previous binary ($BIN/goapp.prev)"
    # A swap: rolling back twice returns to the newer binary.
    mv "$BIN/goapp" "$BIN/goapp.swap"
    mv "$BIN/goapp.prev" "$BIN/goapp"
    mv "$BIN/goapp.swap" "$BIN/goapp.prev"
    echo "rolled back: /usr/local/bin/goapp is the previous binary (the newer one is goapp.prev)"
    service systemctl restart goapp.service
}

# -- uninstall -------------------------------------------------------------------------------

uninstall() {
    require_root
    service systemctl disable --now goapp.service goapp-backup.timer
    rm -f "$UNITS/goapp.service" "$UNITS/goapp-backup.service" "$UNITS/goapp-backup.timer"
    rm -f "$BIN/goapp" "$BIN/goapp.prev"
    rm -rf "$DOC"
    if [ -e "$NGINX/sites-available/goapp.conf" ] || [ -L "$NGINX/sites-enabled/goapp.conf" ]; then
        rm -f "$NGINX/sites-enabled/goapp.conf" "$NGINX/sites-available/goapp.conf"
        service systemctl reload-or-restart nginx.service
    fi
    service systemctl daemon-reload
    if [ "$purge" = 1 ]; then
        rm -rf "$ETC" "$STATE"
        if [ -n "$DESTDIR" ] || id goapp >/dev/null 2>&1; then
            system userdel goapp
        fi
        echo "goapp is removed, with its settings and data"
    else
        echo "goapp is removed; settings (/etc/goapp) and data (/var/lib/goapp) are kept" \
            "(--uninstall --purge removes them)"
    fi
}

case "$action" in
    install) install_all ;;
    rollback) rollback ;;
    uninstall) uninstall ;;
esac
