# The CPU SGEMM, bit for bit against a naive loop on every kernel this CPU has.
blpo_test_exe(test_gemm)
target_include_directories(test_gemm PRIVATE ${CMAKE_SOURCE_DIR}/src)
# its own copy of the kernels, instrumented in sanitizer builds (blpo_core's
# is not there: CMakeLists.txt); it takes precedence over the library's
target_sources(test_gemm PRIVATE ${CMAKE_SOURCE_DIR}/tests/gemm_kernels_copy.c)
set_source_files_properties(${CMAKE_SOURCE_DIR}/tests/gemm_kernels_copy.c PROPERTIES
                            COMPILE_OPTIONS -ffp-contract=fast)
add_test(NAME gemm_cpu COMMAND test_gemm)
set_tests_properties(gemm_cpu PROPERTIES LABELS "cpu;derivatives")

blpo_test_exe(test_grad)
add_test(NAME grad_cpu COMMAND test_grad)
set_tests_properties(grad_cpu PROPERTIES LABELS "cpu;derivatives")

blpo_test_exe(test_population)
add_test(NAME population_independence COMMAND test_population)
set_tests_properties(population_independence PROPERTIES LABELS "cpu;population")

# The binary itself: each class of bad input, and a short end-to-end run.
add_test(NAME cli_errors COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_errors.sh $<TARGET_FILE:blpo-gpu>)
set_tests_properties(cli_errors PROPERTIES LABELS "cpu;config;cli")
# The shell scripts parse and pass shellcheck (where installed): the GPU
# machine's scripts cannot be run here.
add_test(NAME scripts_lint COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/scripts_lint.sh ${CMAKE_SOURCE_DIR})
set_tests_properties(scripts_lint PROPERTIES LABELS "cpu")
foreach(algo ppo nested blpo)
  add_test(NAME cli_run_${algo}
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_run.sh $<TARGET_FILE:blpo-gpu> ${algo})
  set_tests_properties(cli_run_${algo} PROPERTIES LABELS "cpu;cli")
endforeach()

# Learning. `learning` tests are short versions that CI runs; `long` ones are
# the issue's full acceptance runs (ctest -L long), minutes each on 2 cores.
blpo_test_exe(test_learning)
set(BLPO_CONFIGS ${CMAKE_SOURCE_DIR}/configs)
# PPO learns more slowly than BLPO at cartpole.yaml's settings: at 1.5M steps
# its two seeds measured 152.4 and 233.2 (ent_coef 0, 2026-11-24; random play
# is ~22), BLPO's one seed 500 at 1M. The thresholds show learning with
# margin; the full budgets are the `long` tests below.
add_test(NAME learning_ppo_cartpole_short
         COMMAND test_learning ${BLPO_CONFIGS}/cartpole.yaml 100 0 algo.name=ppo
                 run.num_seeds=2 run.total_steps=1500000)
add_test(NAME learning_blpo_cartpole_short
         COMMAND test_learning ${BLPO_CONFIGS}/cartpole.yaml 300 0 run.num_seeds=1
                 run.total_steps=1000000)
# PPO at these settings loses a seed now and then, late, with its stochastic
# policy near the cliff: six seeds ended at 500, 500, 473.5, 499.9, 499.8 and
# 500 (7a1ba9c, CPU, 2026-12-02), and rejax's PPO with the same settings (no
# annealing) at 493.5, 500, 319.3, 488.0, 486.7 and 500 on the same machine.
# So the test asks 5 of 6 seeds, as the paper test below asks 4 of 5: all of
# 3 failed on a last-bits change of the CPU sums (seed 2 473.5, 492.6 before).
add_test(NAME learning_ppo_cartpole_main
         COMMAND test_learning ${BLPO_CONFIGS}/cartpole.yaml 475 5 algo.name=ppo run.num_seeds=6)
add_test(NAME learning_blpo_cartpole_main
         COMMAND test_learning ${BLPO_CONFIGS}/cartpole.yaml 475 0 run.num_seeds=3)
add_test(NAME learning_ppo_paper_cartpole
         COMMAND test_learning ${BLPO_CONFIGS}/paper/cartpole.yaml 475 4 algo.name=ppo
                 algo.critic_lr=2.5e-4)
add_test(NAME learning_blpo_paper_cartpole
         COMMAND test_learning ${BLPO_CONFIGS}/paper/cartpole.yaml 475 4)
add_test(NAME learning_blpo_paper_acrobot
         COMMAND test_learning ${BLPO_CONFIGS}/paper/acrobot.yaml -100 mean)
# run.precision tf32 on the CPU running the CUDA kernels' block programs
# (tests/blocks_backend.h), whose TF32 tiles it emulates (the 10-bit
# products, include/blpo/tc_tile.h). The paper's PPO CartPole at 150k steps,
# 2 seeds: 357.5 and 316.5 (fp32 on the CPU backend 318.2 and 346.7,
# 2026-12-07), so 150 shows learning with margin; the full runs (5 seeds,
# 4 to reach 475) are `long`: PPO's five ended at 484.6, 478.2, 494.0,
# 487.8 and 497.3 (fp32 on the CPU: 492.2, 479.3, 488.1, 476.7, 478.8),
# BLPO's five all at 500.0 (36 min on one core, 2026-12-07). With the dW
# sums on the tiles too: PPO 494.7, 494.3, 495.5, 488.6, 498.7; and with the
# Hessian rows' products as well, BLPO 498.7 and four at 500.0 (26 min).
add_test(NAME learning_ppo_paper_cartpole_tf32_short
         COMMAND test_learning ${BLPO_CONFIGS}/paper/cartpole.yaml 150 0 algo.name=ppo
                 algo.critic_lr=2.5e-4 run.num_seeds=2 run.total_steps=150000 run.precision=tf32)
add_test(NAME learning_ppo_paper_cartpole_tf32
         COMMAND test_learning ${BLPO_CONFIGS}/paper/cartpole.yaml 475 4 algo.name=ppo
                 algo.critic_lr=2.5e-4 run.precision=tf32)
add_test(NAME learning_blpo_paper_cartpole_tf32
         COMMAND test_learning ${BLPO_CONFIGS}/paper/cartpole.yaml 475 4 run.precision=tf32)
set_tests_properties(learning_ppo_paper_cartpole_tf32_short learning_ppo_paper_cartpole_tf32
                     learning_blpo_paper_cartpole_tf32 PROPERTIES ENVIRONMENT BLPO_TEST_DEVICE=blocks)
set_tests_properties(learning_ppo_cartpole_short learning_blpo_cartpole_short
                     learning_ppo_paper_cartpole_tf32_short PROPERTIES LABELS "cpu;learning")
set_tests_properties(learning_ppo_paper_cartpole_tf32 learning_blpo_paper_cartpole_tf32
                     PROPERTIES LABELS "cpu;learning;long")
set_tests_properties(learning_ppo_cartpole_main learning_blpo_cartpole_main
                     learning_ppo_paper_cartpole learning_blpo_paper_cartpole
                     learning_blpo_paper_acrobot PROPERTIES LABELS "cpu;learning;long")
# ctest's default limit is 1500 s; the blocks backend's BLPO run takes about
# 36 min on one core (2026-12-07), and ctest killed it at 25
set_tests_properties(learning_ppo_cartpole_main learning_blpo_cartpole_main
                     learning_ppo_paper_cartpole learning_blpo_paper_cartpole
                     learning_blpo_paper_acrobot learning_ppo_paper_cartpole_tf32
                     learning_blpo_paper_cartpole_tf32 PROPERTIES TIMEOUT 5400)

# Runs that survive: interruption, exact resume, bad checkpoints, NaN faults.
blpo_test_exe(test_ckpt_compare)
# BLPO at P = 4 is CI's slowest test (about 8 min at 150 iterations, 9 under
# ASan), so it runs 40: still five checkpoints, a stop in mid-run and the NaN
# at iteration 9, with the other three cases keeping the longer run.
foreach(algo ppo blpo)
  foreach(P 1 4)
    set(iters 150)
    if(algo STREQUAL "blpo" AND P EQUAL 4)
      set(iters 40)
    endif()
    add_test(NAME resume_${algo}_P${P}
             COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/resume.sh $<TARGET_FILE:blpo-gpu>
                     $<TARGET_FILE:test_ckpt_compare> ${algo} ${P} ${iters})
    set_tests_properties(resume_${algo}_P${P} PROPERTIES LABELS "cpu;checkpoint;cli")
  endforeach()
endforeach()

# Results depend on the seed, not on run.threads (1 vs 2, every algorithm).
add_test(NAME thread_independence
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/threads.sh $<TARGET_FILE:blpo-gpu>
                 $<TARGET_FILE:test_ckpt_compare>)
set_tests_properties(thread_independence PROPERTIES LABELS "cpu;population;cli")

# A replayed iteration (CUDA graph, or its CPU emulation) computes what a
# direct one does; tests/gpu.cmake runs the same script with real graphs.
add_test(NAME replay_emulated
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/replay.sh $<TARGET_FILE:blpo-gpu>
                 $<TARGET_FILE:test_ckpt_compare>)
set_tests_properties(replay_emulated PROPERTIES LABELS "cpu;cli")

# The fused rollout step against the separate ops (CPU; test_gpu_ops runs the
# CUDA kernel against this op).
blpo_test_exe(test_rollout_fused)
add_test(NAME rollout_fused_cpu COMMAND test_rollout_fused)
set_tests_properties(rollout_fused_cpu PROPERTIES LABELS "cpu;envs")

# The fused rollout kernel's block program against that CPU op, bit for bit,
# threads and blocks in every order.
blpo_test_exe(test_rollout_blocks)
add_test(NAME rollout_blocks COMMAND test_rollout_blocks)
# its --cuda path (uploads, downloads, comparisons) on a second CPU backend
add_test(NAME rollout_blocks_device_path COMMAND test_rollout_blocks --cpu-device)
set_tests_properties(rollout_blocks rollout_blocks_device_path PROPERTIES LABELS "cpu;envs")

# Counter-based permutations and the index draws built on them.
blpo_test_exe(test_permute)
add_test(NAME permute_cpu COMMAND test_permute)
set_tests_properties(permute_cpu PROPERTIES LABELS "cpu")

# The benchmark works (not timed here): one tiny training iteration per
# algorithm and a few env steps, on the CPU.
add_test(NAME bench_smoke
         COMMAND sh -c "$<TARGET_FILE:blpo-bench> --iters 1 --warmup 0 --set env.num_envs=16 --set env.num_steps=8 --set algo.num_minibatches=2 && $<TARGET_FILE:blpo-bench> --env-rate --config pendulum.yaml --set env.num_envs=64 --iters 20")
set_tests_properties(bench_smoke PROPERTIES LABELS "cpu;bench")
# Every row of the benchmark table runs (tools/bench_suite.sh at a tiny size;
# CI checks that it works, the figures come from real sizes on real machines).
add_test(NAME bench_suite_tiny
         COMMAND env TINY=1 bash ${CMAKE_SOURCE_DIR}/tools/bench_suite.sh cpu ${CMAKE_BINARY_DIR})
set_tests_properties(bench_suite_tiny PROPERTIES LABELS "cpu;bench")
# and its targets-first mode (TARGETS=1, the short-lease GPU stage)
add_test(NAME bench_targets_tiny
         COMMAND env TINY=1 TARGETS=1 bash ${CMAKE_SOURCE_DIR}/tools/bench_suite.sh cpu
                 ${CMAKE_BINARY_DIR})
set_tests_properties(bench_targets_tiny PROPERTIES LABELS "cpu;bench")

# Profile mode's phase split through the backend's timer (events on a GPU):
# a counting timer checks the stamp ring and how its intervals are charged.
blpo_test_exe(test_phase_timer)
add_test(NAME phase_timer COMMAND test_phase_timer)
set_tests_properties(phase_timer PROPERTIES LABELS "cpu")

# The fused PPO minibatch update against the separate ops, bit for bit.
blpo_test_exe(test_ppo_minibatch)
add_test(NAME ppo_minibatch_fused_cpu COMMAND test_ppo_minibatch)
set_tests_properties(ppo_minibatch_fused_cpu PROPERTIES LABELS "cpu;derivatives")

# The order check of the block-program tests (tests/emu_order.h): a race
# the forward order passes is caught in reverse order.
blpo_test_exe(test_emu_order)
add_test(NAME emu_order COMMAND test_emu_order)
set_tests_properties(emu_order PROPERTIES LABELS "cpu")

# The CUDA fused nested critic step's block programs, run on the host,
# against the separate ops (--cuda: the op itself; tests/gpu.cmake).
blpo_test_exe(test_critic_step)
add_test(NAME critic_step_blocks COMMAND test_critic_step)
set_tests_properties(critic_step_blocks PROPERTIES LABELS "cpu;derivatives")

# The TF32 tensor-core tile (run.precision tf32) as the host emulates it:
# its rounding and its product against a double one.
blpo_test_exe(test_tc_tile)
add_test(NAME tc_tile COMMAND test_tc_tile)
set_tests_properties(tc_tile PROPERTIES LABELS "cpu;derivatives")

# The CUDA fused MLP passes' block programs against the CPU's mlp_forward
# and mlp_backward.
blpo_test_exe(test_mlp_blocks)
add_test(NAME mlp_blocks COMMAND test_mlp_blocks)
set_tests_properties(mlp_blocks PROPERTIES LABELS "cpu;derivatives")

# The CUDA one-kernel Nystrom solve's block program, run on the host, against
# the CPU's LAPACK solve (--cuda: the op itself; tests/gpu.cmake).
blpo_test_exe(test_nystrom_blocks)
add_test(NAME nystrom_blocks COMMAND test_nystrom_blocks)
set_tests_properties(nystrom_blocks PROPERTIES LABELS "cpu;derivatives")

# The CUDA Hessian rows' block programs, run on the host, against the CPU's
# critic_hvp_rows (--cuda: the op itself; tests/gpu.cmake).
blpo_test_exe(test_hvp_rows_blocks)
add_test(NAME hvp_rows_blocks COMMAND test_hvp_rows_blocks)
set_tests_properties(hvp_rows_blocks PROPERTIES LABELS "cpu;derivatives")

# The CUDA MLP tangent's block program, run on the host, against the CPU's
# mlp_tangent (--cuda: the op itself; tests/gpu.cmake).
blpo_test_exe(test_tangent_blocks)
add_test(NAME tangent_blocks COMMAND test_tangent_blocks)
set_tests_properties(tangent_blocks PROPERTIES LABELS "cpu;derivatives")

# The CUDA actor step's block program (the norm bound and hypergradient,
# then Adam), run on the host, against the CPU's hypergrad_combine and adam
# (--cuda: the ops themselves; tests/gpu.cmake).
blpo_test_exe(test_hypergrad_blocks)
add_test(NAME hypergrad_blocks COMMAND test_hypergrad_blocks)
set_tests_properties(hypergrad_blocks PROPERTIES LABELS "cpu;derivatives")

# The CUDA actor loss and mixed head's block programs, run on the host,
# against the CPU's blpo_actor and mixed_head (--cuda: the ops themselves;
# tests/gpu.cmake).
blpo_test_exe(test_actor_blocks)
add_test(NAME actor_blocks COMMAND test_actor_blocks)
set_tests_properties(actor_blocks PROPERTIES LABELS "cpu;derivatives")

# The CUDA mlp_forward_many / mlp_backward_many sets (add_to_prev's sums
# included), run on the host by the blocks backend, against the CPU's.
blpo_test_exe(test_mlp_many_blocks)
add_test(NAME mlp_many_blocks COMMAND test_mlp_many_blocks)
set_tests_properties(mlp_many_blocks PROPERTIES LABELS "cpu;derivatives")

# Whole training iterations with the CUDA kernels' block programs in the
# trainer's real calls, on the CPU, against the CPU backend (the same cases
# as test_gpu_update; tests/update_compare.h).
blpo_test_exe(test_blocks_update)
add_test(NAME blocks_update COMMAND test_blocks_update)
set_tests_properties(blocks_update PROPERTIES LABELS "cpu;derivatives")

# The block programs again in the variants tools/gpu_bundle.sh builds to
# time beside the default (a 4 x 2 tile, float4 loads; BLPO_MBF_TILE): a
# 4 x 4 tile (_tile44), and scalar loads in the pitches before them
# (_scalar). Every check as above, so each variant computes the same as the
# separate ops. Only in builds of the default (a variant build is its own).
if(NOT BLPO_MBF_TILE)
  foreach(variant "tile44:BLPO_MBF_TR=4,BLPO_MBF_TC=4" "scalar:BLPO_MBF_VEC=1")
    string(REPLACE ":" ";" variant "${variant}")
    list(GET variant 0 suffix)
    list(GET variant 1 defs)
    string(REPLACE "," ";" defs "${defs}")
    foreach(pair test_ppo_minibatch:ppo_minibatch_fused_cpu test_critic_step:critic_step_blocks
            test_mlp_blocks:mlp_blocks test_mlp_many_blocks:mlp_many_blocks
            test_hvp_rows_blocks:hvp_rows_blocks test_tangent_blocks:tangent_blocks)
      string(REPLACE ":" ";" pair "${pair}")
      list(GET pair 0 exe)
      list(GET pair 1 name)
      add_executable(${exe}_${suffix} ${CMAKE_CURRENT_SOURCE_DIR}/${exe}.c)
      target_compile_options(${exe}_${suffix} PRIVATE ${BLPO_WARNINGS} ${BLPO_TEST_FLAGS})
      target_compile_definitions(${exe}_${suffix} PRIVATE ${defs})
      target_link_libraries(${exe}_${suffix} PRIVATE blpo_core)
      add_test(NAME ${name}_${suffix} COMMAND ${exe}_${suffix})
      set_tests_properties(${name}_${suffix} PROPERTIES LABELS "cpu;derivatives")
    endforeach()
  endforeach()
endif()

# The episode summaries the metrics read (test_gpu_ops holds the CUDA kernel
# to this op) and the ring of recent episodes they feed.
blpo_test_exe(test_episode_summary)
add_test(NAME episode_summary_cpu COMMAND test_episode_summary)
set_tests_properties(episode_summary_cpu PROPERTIES LABELS "cpu")
