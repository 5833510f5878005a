# CUDA env kernels against the CPU backend. Built only with the CUDA backend;
# on a machine without a usable device the test exits 77 and CTest reports it
# as skipped.
if(BLPO_HAVE_CUDA)
  blpo_test_exe(test_gpu_envs)
  target_link_libraries(test_gpu_envs PRIVATE CUDA::cudart)
  add_test(NAME gpu_envs COMMAND test_gpu_envs)
  set_tests_properties(gpu_envs PROPERTIES SKIP_RETURN_CODE 77 LABELS "gpu;envs")
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
endif()
