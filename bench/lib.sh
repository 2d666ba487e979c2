# Shared by the bench scripts: source it, then call its functions.

# machine_line: the CPU model, core count and the flags that decide a run's kernels, for a
# results file's header.
machine_line() {
  echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; flags: $(grep -o -w -E 'avx2|avx512f|avx512_bf16|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
}
