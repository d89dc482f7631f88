#!/usr/bin/env bash
# ansible-test sanity on exactly what ships: the artifact from `make collection`, unpacked as
# ansible_collections/controlplane/etcd (ansible-test only runs from such a tree), plus the
# ignore files in tests/sanity/. Each check runs in its own venv that ansible-test builds.
#   tests/sanity/run.sh .cache/dist/controlplane-etcd-1.0.0.tar.gz [ansible-test options]
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
tarball=$1
shift
tree=.cache/ansible-test/ansible_collections/controlplane/etcd
rm -rf .cache/ansible-test
mkdir -p "$tree/tests"
tar -xzf "$tarball" -C "$tree"
mkdir -p "$tree/tests/sanity"
cp tests/sanity/ignore-*.txt "$tree/tests/sanity/"

# ansible-test downloads a pip bootstrap script from a host this machine cannot reach; its
# own error message says to put the script in its cache instead. Ours uses ensurepip.
pip_version=$(python3 - <<'PY'
import re, ansible_test, pathlib
text = (pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py").read_text()
print(re.search(r"pip='([0-9.]+)'", text).group(1))
PY
)
mkdir -p ~/.ansible/test/cache
cp tests/sanity/get_pip.py ~/.ansible/test/cache/"get_pip_${pip_version//./_}.py"

# ansible-test tests the files git knows (its own output excluded), so give the copy an index.
cd "$tree"
git init -q
echo "tests/output/" >.gitignore
git add -A
ansible-test sanity --python "$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')" --venv \
  --color no "$@"
echo "sanity: passed on $(basename "$tarball") (tree: ${tree#"$root"/})"
