#!/usr/bin/env bash
# `npm run package`: builds dist/privdav_<version>_amd64.deb with dpkg-deb — the built code and the
# production node_modules (native addons compiled here) under /usr/lib/privdav, /usr/bin/privdav,
# the unit, the PAM service, the configuration (conffiles), privdav(8) and the docs. Maintainer
# scripts: packaging/debian/. `--no-build` packages what `npm run build` left in dist/.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" != "--no-build" ]; then npm run build >/dev/null; fi

version=$(node -p "require('./package.json').version")
stage=$(mktemp -d /tmp/privdav-package.XXXXXX)
trap 'rm -rf "$stage"' EXIT
root="$stage/root"
lib="$root/usr/lib/privdav"
install -d "$lib/dist" "$lib/bin" "$lib/native/build/Release" "$root/usr/bin" "$root/etc/privdav" \
  "$root/etc/pam.d" "$root/lib/systemd/system" "$root/usr/share/man/man8" "$root/usr/share/doc/privdav" \
  "$root/DEBIAN"

# The code: what the daemon runs, not the tests or the bench.
cp package.json package-lock.json "$lib/"
cp -r dist/common dist/helper dist/src dist/native "$lib/dist/"
cp native/build/Release/privdav_native.node "$lib/native/build/Release/"
install -m 0755 bin/privdav "$lib/bin/privdav"
ln -s ../lib/privdav/bin/privdav "$root/usr/bin/privdav"

# Production node_modules: the tree's own (addons already compiled for this Node), without the
# dev dependencies: each top-level package `npm ls --omit=dev` lists is copied as it is.
npm ls --omit=dev --all --parseable | sed "s#^$PWD/##" | grep '^node_modules/' |
  awk -F/ '{ if ($2 ~ /^@/) print $1 "/" $2 "/" $3; else print $1 "/" $2 }' | sort -u |
  xargs -I{} cp -a --parents {} "$lib/"
rm -f "$lib/package-lock.json"
# Build leftovers of the addons (objects, sources, test suites) are not needed to run.
find "$lib/node_modules" \( -name obj.target -o -name .deps -o -name '*.o' -o -name '*.a' -o -name '*.mk' \
  -o -name Makefile -o -name config.gypi -o -name '*.target.mk' \) -prune -exec rm -rf {} +
rm -rf "$lib/node_modules/better-sqlite3/deps" "$lib/node_modules/better-sqlite3/src" \
  "$lib/node_modules/.package-lock.json"
find "$lib/node_modules" -type d \( -name test -o -name tests -o -name .github \) -prune -exec rm -rf {} +
# Files of the modules' own development (lintian: package-contains-npm-ignore-file, ...), and the
# SQLite test extension better-sqlite3 builds for its test suite.
find "$lib/node_modules" \( -name '.npmignore' -o -name '.eslintrc*' -o -name '.travis.yml' -o -name '*~' \
  -o -name '.editorconfig' -o -name '.jshintrc' -o -name '.prettierrc*' -o -name 'test_extension.node' \) -delete
find "$lib" -name '*.node' -exec strip --strip-unneeded --remove-section=.comment {} +
find "$lib/node_modules" -xtype l -delete
find "$lib/node_modules" -type d -empty -delete
# Only what dpkg should see: no write bits for others, no stray executables.
find "$lib" -type d -exec chmod 0755 {} +
find "$lib" -type f -exec chmod 0644 {} +
chmod 0755 "$lib/bin/privdav"
# Scripts keep their execute bit (lintian: script-not-executable).
grep -rlZ --include='*.js' --include='node-pre-gyp' -m1 '^#!' "$lib/node_modules" | xargs -0 -r chmod 0755

install -m 0644 config/privdav.toml "$root/etc/privdav/privdav.toml"
install -m 0644 config/pam.d/privdav "$root/etc/pam.d/privdav"
# The unit, pointing at the packaged command (its header explains a manual install instead).
sed -e 's#/usr/local/bin/privdav#/usr/bin/privdav#g' \
  -e '1,/^$/c\# systemd unit for privdav, installed by the Debian package. Local changes: systemctl edit privdav\n' \
  config/privdav.service >"$root/lib/systemd/system/privdav.service"
chmod 0644 "$root/lib/systemd/system/privdav.service"
gzip -9n <packaging/privdav.8 >"$root/usr/share/man/man8/privdav.8.gz"
gzip -9n <README.md >"$root/usr/share/doc/privdav/README.md.gz"
# A native package (privdav is its own upstream): the changelog is changelog.gz.
gzip -9n <packaging/debian/changelog >"$root/usr/share/doc/privdav/changelog.gz"
install -m 0644 packaging/debian/copyright "$root/usr/share/doc/privdav/copyright"
install -D -m 0644 config/fail2ban/privdav.conf "$root/usr/share/doc/privdav/examples/fail2ban/privdav.conf"
chmod 0644 "$root"/usr/share/man/man8/* "$root"/usr/share/doc/privdav/*.gz "$root"/usr/share/doc/privdav/copyright

# Depends: the shared libraries the addons link (dpkg-shlibdeps reads them) and the Node.js the code needs.
mkdir -p "$stage/debian"
printf 'Source: privdav\n\nPackage: privdav\nArchitecture: amd64\n' >"$stage/debian/control"
shlibs=$(cd "$stage" && find root -name '*.node' -print0 | xargs -0 dpkg-shlibdeps -O 2>/dev/null |
  sed -n 's/^shlibs:Depends=//p')
node_range=$(node -p "require('./package.json').engines.node.replace(/^>=\s*/, '')")
for script in postinst prerm postrm; do install -m 0755 "packaging/debian/$script" "$root/DEBIAN/$script"; done
printf '/etc/privdav/privdav.toml\n/etc/pam.d/privdav\n' >"$root/DEBIAN/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) \
  >"$root/DEBIAN/md5sums"
cat >"$root/DEBIAN/control" <<CONTROL
Package: privdav
Version: $version
Architecture: amd64
Maintainer: privdav maintainers <privdav@example.org>
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: nodejs (>= $node_range), adduser, ${shlibs}
Section: httpd
Priority: optional
Description: privilege-separated WebDAV server for home directories
 privdav serves each user's home directory over WebDAV with that user's own
 Unix identity: a small root monitor answers PAM logins and never parses HTTP,
 an unprivileged web process speaks HTTP/TLS and WebDAV, and one worker per
 user, running as that user, performs the file operations.
CONTROL

mkdir -p dist
out="dist/privdav_${version}_amd64.deb"
dpkg-deb --root-owner-group -Zxz -z3 --build "$root" "$out" >/dev/null
echo "$out"
