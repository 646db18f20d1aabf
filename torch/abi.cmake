# The torch shim's interface hash, BDT_ABI_HASH: the SHA-256 of the headers of its C API
# (what libbodhi_torch.so implements and what the processes that load it, and the C network
# functions it calls back, expect). The main build (CMakeLists.txt) and a GPU machine's
# rebuild of the shim alone (bench/gpu/torch-shim/) include this file, so a shim and a
# bodhi built from the same sources agree, and torch/lazy.c and bodhi._policy refuse a
# shim of other sources (one left on LD_LIBRARY_PATH after an update), whose structs
# could be laid out otherwise. Any change to these files, comments too, asks for the
# shim to be rebuilt.
#   bodhi_abi_hash(SOURCE_DIR OUT_VAR)
function(bodhi_abi_hash src out)
  set(all "")
  # (bodhi.h: the error codes and bd_seterr, which cross the boundary too)
  foreach(n torch/bd_torch.h torch/net.h torch/ppo_algo.h torch/dqn_algo.h torch/sac_algo.h torch/dist.h
          torch/cpunet.h include/bodhi/bodhi.h)
    set(h "${src}/${n}")
    if(NOT EXISTS "${h}")
      message(FATAL_ERROR "bodhi_abi_hash: no ${h}")
    endif()
    file(SHA256 "${h}" one)
    string(APPEND all "${n}:${one};")
    # a header changed reconfigures, so that the hash is never older than the build
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${h}")
  endforeach()
  string(SHA256 sum "${all}")
  set(${out} "${sum}" PARENT_SCOPE)
endfunction()
