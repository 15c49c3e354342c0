# Sourced first by the bench scripts: `--help` or `-h` as the first argument prints the script's
# header comment (what it measures, its usage) and exits, before anything is installed or built.
# shellcheck shell=bash
case "${1:-}" in
  -h|--help)
    sed -n '2,/^[^#]/{/^#/!q;s/^# \{0,1\}//;p}' "$0"
    exit 0 ;;
esac
