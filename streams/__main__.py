from cdcsync.streams.app import main

main()
