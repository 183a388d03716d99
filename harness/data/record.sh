# ~/.ldmatrix/record.sh (ldmatrix): ldmatrix_record FILE COMMAND [ARGS...] writes what this shell
# will pass to COMMAND: its argv, the environment (as env -0 receives it, $_ being the path bash
# runs, as bash sets it for every command), AT_EXECFN and /proc/self/exe.
ldmatrix_record() {
  local out=$1 path entry
  shift
  case $1 in */*) path=$1 ;; *) path=$(type -P -- "$1") ;; esac
  {
    for entry in "$@"; do printf 'A%s\0' "$entry"; done
    while IFS= read -r -d '' entry; do
      case $entry in _=*) entry="_=$path" ;; esac
      printf 'E%s\0' "$entry"
    done < <(env -0; :)  # ':' keeps env a child of the subshell, as the command is of this shell
    printf 'X%s\0' "$path"
    printf 'P%s\0' "$(cd -P -- "${path%/*}" && pwd)/${path##*/}"
  } > "$out"
}
