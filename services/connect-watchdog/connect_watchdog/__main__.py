from connect_watchdog.watchdog import main

main()
