# Env tests: Gymnasium fixture replay per task (tools/gen_env_fixtures.py
# writes the fixtures) and the episode/reset logic. CPU only.
blpo_test_exe(test_env_fixture)
blpo_test_exe(test_envs)

set(BLPO_ENV_IDS CartPole-v1 Acrobot-v1 MountainCar-v0 Pendulum-v1 MountainCarContinuous-v0)
foreach(env_id ${BLPO_ENV_IDS})
  add_test(NAME env_fixture_${env_id}
           COMMAND test_env_fixture ${env_id} ${BLPO_TEST_DATA}/envs/${env_id}.csv)
  set_tests_properties(env_fixture_${env_id} PROPERTIES LABELS "cpu;envs")
endforeach()

add_test(NAME test_envs COMMAND test_envs)
set_tests_properties(test_envs PROPERTIES LABELS "cpu;envs")
