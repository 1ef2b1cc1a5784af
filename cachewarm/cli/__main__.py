from cachewarm.cli import main

main()
