# CUDA env kernels against the CPU backend. Built only with the CUDA backend;
# on a machine without a usable device the test exits 77 and CTest reports it
# as skipped.
if(BLPO_HAVE_CUDA)
  blpo_test_exe(test_gpu_envs)
  # launches the env kernels directly, so it links their objects
  target_link_libraries(test_gpu_envs PRIVATE blpo_cuda CUDA::cudart)
  add_test(NAME gpu_envs COMMAND test_gpu_envs)
  set_tests_properties(gpu_envs PROPERTIES SKIP_RETURN_CODE 77 LABELS "gpu;envs")
endif()

# The TF32 tile (include/blpo/tc_tile.h) on the device against the host's
# emulation, which the CPU tests hold the layer passes to: WMMA's layouts,
# its rounding and the edges of a tile, one warp at a time.
if(BLPO_HAVE_CUDA)
  add_executable(test_tc_tile_cuda ${CMAKE_CURRENT_SOURCE_DIR}/test_tc_tile_cuda.cu)
  target_include_directories(test_tc_tile_cuda PRIVATE ${CMAKE_SOURCE_DIR}/include)
  target_compile_options(test_tc_tile_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>)
  target_link_libraries(test_tc_tile_cuda PRIVATE CUDA::cudart)
  add_test(NAME gpu_tc_tile COMMAND test_tc_tile_cuda)
  set_tests_properties(gpu_tc_tile PROPERTIES SKIP_RETURN_CODE 77 LABELS "gpu;derivatives")
endif()

# Every CUDA backend operation against the CPU backend on fresh random inputs,
# outputs poisoned first (test_gpu_ops: buffers, envs, networks, policy,
# targets, losses, optimiser; test_gpu_second_order: nested critic and BLPO
# operations), and whole training runs on the GPU (gpu_learning).
if(BLPO_HAVE_CUDA)
  foreach(t test_gpu_ops test_gpu_second_order test_gpu_update)
    if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${t}.c)
      blpo_test_exe(${t})
      target_link_libraries(${t} PRIVATE CUDA::cudart)
      string(REPLACE "test_" "" name ${t})
      add_test(NAME ${name} COMMAND ${t})
      set_tests_properties(${name} PROPERTIES SKIP_RETURN_CODE 77 LABELS "gpu")
    endif()
  endforeach()
  # the same ops with their kernels under programmatic dependent launch
  # (run.pdl; compute capability 9.0+, skipped elsewhere;
  # tests/cuda_test_backend.h)
  foreach(name gpu_ops gpu_second_order)
    add_test(NAME ${name}_pdl COMMAND test_${name})
    set_tests_properties(${name}_pdl PROPERTIES ENVIRONMENT BLPO_TEST_PDL=1 SKIP_RETURN_CODE 77
                         LABELS "gpu;pdl")
  endforeach()
endif()

# The CUDA fused PPO minibatch update, nested critic step, Nystrom solve,
# Hessian rows, tangent, actor step, actor loss, mixed head and rollout
# against the CPU's ops (tests/test_ppo_minibatch.c, tests/test_critic_step.c,
# tests/test_nystrom_blocks.c, tests/test_hvp_rows_blocks.c,
# tests/test_tangent_blocks.c, tests/test_hypergrad_blocks.c,
# tests/test_actor_blocks.c, tests/test_rollout_blocks.c; their CPU runs
# check the kernels' block programs).
if(BLPO_HAVE_CUDA)
  add_test(NAME gpu_ppo_minibatch COMMAND test_ppo_minibatch --cuda)
  add_test(NAME gpu_critic_step COMMAND test_critic_step --cuda)
  add_test(NAME gpu_nystrom COMMAND test_nystrom_blocks --cuda)
  add_test(NAME gpu_hvp_rows COMMAND test_hvp_rows_blocks --cuda)
  add_test(NAME gpu_tangent COMMAND test_tangent_blocks --cuda)
  add_test(NAME gpu_hypergrad COMMAND test_hypergrad_blocks --cuda)
  add_test(NAME gpu_actor COMMAND test_actor_blocks --cuda)
  set_tests_properties(gpu_ppo_minibatch gpu_critic_step gpu_nystrom gpu_hvp_rows gpu_tangent
                       gpu_hypergrad gpu_actor
                       PROPERTIES SKIP_RETURN_CODE 77 LABELS "gpu;derivatives")
  add_test(NAME gpu_rollout_blocks COMMAND test_rollout_blocks --cuda)
  set_tests_properties(gpu_rollout_blocks PROPERTIES SKIP_RETURN_CODE 77 LABELS "gpu;envs")
  # the same under programmatic dependent launch (tests/cuda_test_backend.h)
  foreach(pair ppo_minibatch:ppo_minibatch critic_step:critic_step nystrom:nystrom_blocks
          hvp_rows:hvp_rows_blocks tangent:tangent_blocks hypergrad:hypergrad_blocks
          actor:actor_blocks)
    string(REPLACE ":" ";" pair "${pair}")
    list(GET pair 0 name)
    list(GET pair 1 exe)
    add_test(NAME gpu_${name}_pdl COMMAND test_${exe} --cuda)
    set_tests_properties(gpu_${name}_pdl PROPERTIES ENVIRONMENT BLPO_TEST_PDL=1
                         SKIP_RETURN_CODE 77 LABELS "gpu;derivatives;pdl")
  endforeach()
  add_test(NAME gpu_rollout_blocks_pdl COMMAND test_rollout_blocks --cuda)
  set_tests_properties(gpu_rollout_blocks_pdl PROPERTIES ENVIRONMENT BLPO_TEST_PDL=1
                       SKIP_RETURN_CODE 77 LABELS "gpu;envs;pdl")
endif()

# Short training runs on the GPU that must learn CartPole (PPO with the
# entropy bonus it was run with on the H100, 2026-11-24).
if(BLPO_HAVE_CUDA)
  set(BLPO_CONFIGS ${CMAKE_SOURCE_DIR}/configs)
  add_test(NAME gpu_learning_ppo_cartpole
           COMMAND test_learning ${BLPO_CONFIGS}/cartpole.yaml 150 0 algo.name=ppo algo.ent_coef=0.01
                   run.num_seeds=2 run.total_steps=1500000)
  add_test(NAME gpu_learning_blpo_cartpole
           COMMAND test_learning ${BLPO_CONFIGS}/cartpole.yaml 300 0 run.num_seeds=1
                   run.total_steps=1000000)
  set_tests_properties(gpu_learning_ppo_cartpole gpu_learning_blpo_cartpole PROPERTIES
                       ENVIRONMENT BLPO_TEST_DEVICE=cuda SKIP_RETURN_CODE 77 LABELS "gpu;learning")
endif()

# Real CUDA graphs: an iteration replayed from its graph computes what the
# directly launched one does (tests/replay.sh; the CPU runs its emulation).
if(BLPO_HAVE_CUDA)
  add_test(NAME gpu_replay
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/replay.sh $<TARGET_FILE:blpo-gpu>
                   $<TARGET_FILE:test_ckpt_compare>)
  set_tests_properties(gpu_replay PROPERTIES ENVIRONMENT BLPO_REPLAY_DEVICE=cuda
                       SKIP_RETURN_CODE 77 LABELS "gpu;cli")
  # the same with the replays' kernels under programmatic dependent launch
  # (run.pdl; compute capability 9.0+, skipped below)
  add_test(NAME gpu_replay_pdl
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/replay.sh $<TARGET_FILE:blpo-gpu>
                   $<TARGET_FILE:test_ckpt_compare>)
  set_tests_properties(gpu_replay_pdl PROPERTIES ENVIRONMENT
                       "BLPO_REPLAY_DEVICE=cuda;BLPO_REPLAY_PDL=1" SKIP_RETURN_CODE 77
                       LABELS "gpu;cli;pdl")
endif()

# The CUDA backend plugin's loader, on any machine (no GPU needed): a CPU run
# maps no CUDA library, the built plugin loads, and a missing, foreign,
# stale or mismatched plugin is refused with its reason.
if(BLPO_HAVE_CUDA)
  blpo_test_exe(test_cuda_plugin)
  add_library(stale_cuda_plugin MODULE ${CMAKE_CURRENT_SOURCE_DIR}/stale_cuda_plugin.c)
  target_include_directories(stale_cuda_plugin PRIVATE ${CMAKE_SOURCE_DIR}/include)
  add_library(mismatched_cuda_plugin MODULE ${CMAKE_CURRENT_SOURCE_DIR}/stale_cuda_plugin.c)
  target_include_directories(mismatched_cuda_plugin PRIVATE ${CMAKE_SOURCE_DIR}/include)
  target_compile_definitions(mismatched_cuda_plugin PRIVATE BLPO_TEST_SAME_ABI)
  find_library(BLPO_LIBM_SO NAMES libm.so.6 m)
  set(plugin_cases
      "cpu-only|"
      "real|$<TARGET_FILE:blpo_cuda_plugin>"
      "missing|${CMAKE_CURRENT_BINARY_DIR}/no-such-plugin.so"
      "foreign|${BLPO_LIBM_SO}"
      "stale|$<TARGET_FILE:stale_cuda_plugin>"
      "mismatched|$<TARGET_FILE:mismatched_cuda_plugin>")
  foreach(c ${plugin_cases})
    string(REPLACE "|" ";" parts "${c}")
    list(GET parts 0 mode)
    list(LENGTH parts np)
    add_test(NAME cuda_plugin_${mode} COMMAND test_cuda_plugin ${mode})
    if(np GREATER 1)
      list(GET parts 1 path)
      if(path)
        set_tests_properties(cuda_plugin_${mode} PROPERTIES ENVIRONMENT "BLPO_CUDA_PLUGIN=${path}")
      endif()
    endif()
    set_tests_properties(cuda_plugin_${mode} PROPERTIES LABELS "cpu;cli")
  endforeach()
  # where there is a device, the loaded plugin finds it (gpu_check.sh runs -L gpu)
  set_tests_properties(cuda_plugin_real PROPERTIES LABELS "cpu;cli;gpu")
  add_test(NAME cuda_plugin_cli
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cuda_plugin_cli.sh $<TARGET_FILE:blpo-gpu>
                   $<TARGET_FILE:stale_cuda_plugin>)
  set_tests_properties(cuda_plugin_cli PROPERTIES LABELS "cpu;cli")
endif()

# The hints blpo_cuda_fail prints after a CUDA error (include/blpo/cuda_error_hint.h),
# against the toolkit's own error names; the CUDA headers only, no GPU.
if(BLPO_HAVE_CUDA)
  blpo_test_exe(test_cuda_error_hint)
  target_include_directories(test_cuda_error_hint PRIVATE ${CUDAToolkit_INCLUDE_DIRS})
  add_test(NAME cuda_error_hint COMMAND test_cuda_error_hint)
  set_tests_properties(cuda_error_hint PROPERTIES LABELS "cpu")
endif()

# Every kernel's registers, spills and static shared memory as ptxas reports
# them for each architecture built, checked so that no launch can fail for
# resources on a device (tools/kernel_resources.py). Needs no GPU, so CI runs
# it on every commit.
if(BLPO_HAVE_CUDA)
  find_package(Python3 COMPONENTS Interpreter)
  if(Python3_FOUND)
    set(blpo_kr_archs "")
    foreach(a ${CMAKE_CUDA_ARCHITECTURES})
      string(REGEX REPLACE "-(real|virtual)$" "" a "${a}")
      if(a MATCHES "^[0-9]+[af]?$") # "native" or "all": the tool's default list
        list(APPEND blpo_kr_archs --arch ${a})
      endif()
    endforeach()
    file(GLOB blpo_kr_sources CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/kernels/*.cu)
    set(blpo_kr_defs "")
    foreach(d ${BLPO_MBF_TILE_DEFS}) # a tile variant's kernels, as built
      list(APPEND blpo_kr_defs -D ${d})
    endforeach()
    add_test(NAME kernel_resources
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tools/kernel_resources.py
                     --nvcc ${CMAKE_CUDA_COMPILER} ${blpo_kr_archs} ${blpo_kr_defs}
                     -I ${CMAKE_SOURCE_DIR}/include -I ${CMAKE_SOURCE_DIR}/envs_gpu
                     --table ${CMAKE_BINARY_DIR}/kernel_resources.md ${blpo_kr_sources})
    set_tests_properties(kernel_resources PROPERTIES LABELS "cuda-static")
    # the checks' failing side, on made-up PTX (no compiler needed)
    add_test(NAME kernel_resources_self_test
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tools/kernel_resources.py --self-test)
    set_tests_properties(kernel_resources_self_test PROPERTIES LABELS "cuda-static")
  else()
    message(STATUS "kernel_resources test: no Python 3 interpreter, not registered")
  endif()
endif()
