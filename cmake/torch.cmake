# LibTorch 2 from PyPI's torch wheel (tools/setup.sh installs it into .venv) -> target longnet::torch.
#
# CPU build (default): libtorch_cpu + libc10 only. The wheel's own TorchConfig.cmake is not used
# here because it links torch_cuda as well, which needs the CUDA toolkit to configure and several
# GB of CUDA wheels to load.
#
# Both builds: the wheel ships no Gloo headers, which c10d's ProcessGroupGloo.hpp includes. The
# headers that one includes (17 files) are vendored under third_party/gloo/ from the Gloo commit
# whose code is inside the wheel's libtorch_cpu (third_party/gloo/README.md says how it was
# identified); no Gloo library is linked, the wheel's own Gloo is the one that runs.
#
# CUDA build (-DLONGNET_CUDA=ON, preset `cuda`): the wheel's TorchConfig.cmake with the CUDA
# toolkit, torch_cuda and NCCL process groups.
set(LONGNET_TORCH_ROOT "" CACHE PATH "the wheel's torch package folder (.../site-packages/torch)")
if(NOT LONGNET_TORCH_ROOT)
  file(GLOB _longnet_torch_roots "${PROJECT_SOURCE_DIR}/.venv/lib/python3*/site-packages/torch")
  list(LENGTH _longnet_torch_roots _n)
  if(_n EQUAL 1)
    set(LONGNET_TORCH_ROOT "${_longnet_torch_roots}" CACHE PATH "" FORCE)
  endif()
endif()
if(NOT EXISTS "${LONGNET_TORCH_ROOT}/include/torch/headeronly/version.h")
  message(FATAL_ERROR "LONGNET_TORCH_ROOT='${LONGNET_TORCH_ROOT}' is not a LibTorch 2 from the torch wheel "
                      "(expected include/torch/headeronly/version.h under it): run tools/setup.sh, or pass "
                      "-DLONGNET_TORCH_ROOT=<venv>/lib/python3.X/site-packages/torch")
endif()
file(STRINGS "${LONGNET_TORCH_ROOT}/include/torch/headeronly/version.h" _v REGEX "#define TORCH_VERSION_MAJOR")
string(REGEX MATCH "[0-9]+" LONGNET_TORCH_MAJOR "${_v}")
if(LONGNET_TORCH_MAJOR LESS 2)
  message(FATAL_ERROR "${LONGNET_TORCH_ROOT} is LibTorch ${LONGNET_TORCH_MAJOR}.x; longnet needs LibTorch 2")
endif()

# The wheel's include/ also carries its own {fmt} (11), which would shadow Debian's {fmt} 9 that
# spdlog was built with: the build sees include/ through a folder of links without fmt/.
set(_inc "${CMAKE_BINARY_DIR}/torch-include")
file(REMOVE_RECURSE "${_inc}")
file(MAKE_DIRECTORY "${_inc}")
file(GLOB _entries RELATIVE "${LONGNET_TORCH_ROOT}/include" "${LONGNET_TORCH_ROOT}/include/*")
list(REMOVE_ITEM _entries fmt)
foreach(_e IN LISTS _entries)
  file(CREATE_LINK "${LONGNET_TORCH_ROOT}/include/${_e}" "${_inc}/${_e}" SYMBOLIC)
endforeach()

option(LONGNET_CUDA "Build against the wheel's CUDA LibTorch with NCCL process groups" OFF)
add_library(longnet_torch INTERFACE)
add_library(longnet::torch ALIAS longnet_torch)
if(LONGNET_CUDA)
  list(APPEND CMAKE_PREFIX_PATH "${LONGNET_TORCH_ROOT}/share/cmake")
  find_package(Torch REQUIRED)
  foreach(_t IN ITEMS headeronly c10 c10_cuda torch_cpu torch_cuda torch)
    if(TARGET ${_t})
      foreach(_p IN ITEMS INTERFACE_INCLUDE_DIRECTORIES INTERFACE_SYSTEM_INCLUDE_DIRECTORIES)
        get_target_property(_dirs ${_t} ${_p})
        if(_dirs)
          string(REPLACE "${LONGNET_TORCH_ROOT}/include" "${_inc}" _dirs "${_dirs}")
          set_target_properties(${_t} PROPERTIES ${_p} "${_dirs}")
        endif()
      endforeach()
    endif()
  endforeach()
  target_link_libraries(longnet_torch INTERFACE torch)
  # libtorch_cuda.so's own dependencies (NCCL, cuDNN, cuBLAS, ...) are the wheels' under
  # site-packages/nvidia/*/lib, at the versions torch pins; the toolkit's copies under
  # /usr/local/cuda (older) must not be found first, neither when linking nor when loading.
  file(GLOB _nvidia_libs "${LONGNET_TORCH_ROOT}/../nvidia/*/lib")
  if(_nvidia_libs)
    list(JOIN _nvidia_libs ":" _nvidia_path)
    target_link_options(longnet_torch INTERFACE "LINKER:-rpath,${_nvidia_path}" "LINKER:-rpath-link,${_nvidia_path}")
  endif()
  target_compile_definitions(longnet_torch INTERFACE LONGNET_WITH_CUDA=1 LONGNET_WITH_NCCL=1 USE_C10D_NCCL=1)
else()
  target_include_directories(longnet_torch SYSTEM INTERFACE "${_inc}" "${_inc}/torch/csrc/api/include")
  # What the wheel's Caffe2Targets.cmake gives torch_cpu's users, less RPC, which longnet does not use.
  target_compile_definitions(longnet_torch INTERFACE USE_DISTRIBUTED USE_C10D_GLOO _GLIBCXX_USE_CXX11_ABI=1)
  target_compile_features(longnet_torch INTERFACE cxx_std_20)
  target_link_libraries(longnet_torch INTERFACE
    "${LONGNET_TORCH_ROOT}/lib/libtorch_cpu.so" "${LONGNET_TORCH_ROOT}/lib/libc10.so")
endif()
target_include_directories(longnet_torch SYSTEM INTERFACE "${PROJECT_SOURCE_DIR}/third_party/gloo/include")
message(STATUS "LibTorch ${LONGNET_TORCH_MAJOR}.x at ${LONGNET_TORCH_ROOT} (CUDA: ${LONGNET_CUDA})")
