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
  foreach(t test_gpu_ops test_gpu_second_order)
    if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${t}.c)
      blpo_test_exe(${t})
      target_link_libraries(${t} PRIVATE CUDA::cudart)
      string(REPLACE "test_" "" name ${t})
      add_test(NAME ${name} COMMAND ${t})
      set_tests_properties(${name} PROPERTIES SKIP_RETURN_CODE 77 LABELS "gpu")
    endif()
  endforeach()
endif()
