from cachewarm_cli import main

main()
