# Shared by the lab scripts: source it, after defining log() and die().
# shellcheck shell=bash

# First Debian mirror URI from apt's configuration (deb822 first, then one-line
# format), skipping security/updates suites. Never hard-code a mirror host.
# lab/mirror.py has a Python port (debian_mirror): change both together.
debian_mirror() {
  if [[ -n ${LAB_DEBIAN_MIRROR:-} ]]; then echo "${LAB_DEBIAN_MIRROR%/}"; return; fi
  local f uri=""
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    uri="$(awk 'BEGIN { RS = ""; FS = "\n" }
      { t = ""; u = ""; s = ""; e = "yes"
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^[ \t]*#/) continue
          if (sub(/^[Tt]ypes:[ \t]*/, "", $i)) t = $i
          else if (sub(/^URIs:[ \t]*/, "", $i)) u = $i
          else if (sub(/^[Ss]uites:[ \t]*/, "", $i)) s = $i
          else if (sub(/^[Ee]nabled:[ \t]*/, "", $i)) e = $i
        }
        split(s, ss, /[ \t]+/)
        if (t ~ /(^|[ \t])deb([ \t]|$)/ && e !~ /^no/ && ss[1] !~ /-(security|updates|backports)/ && u ~ /^https?:\/\//) {
          split(u, a, /[ \t]+/); print a[1]; exit
        } }' "$f")"
    [[ -n $uri ]] && break
  done
  if [[ -z $uri && -f /etc/apt/sources.list ]]; then
    uri="$(awk '$1 == "deb" { i = 2
        if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; i++ }
        if ($(i + 1) !~ /-(security|updates|backports)/ && $i ~ /^https?:\/\//) { print $i; exit } }' /etc/apt/sources.list)"
  fi
  [[ -n $uri ]] || die "no Debian mirror found in apt sources; set LAB_DEBIAN_MIRROR"
  echo "${uri%/}"
}
