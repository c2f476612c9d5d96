import Testing

@testable import AuthProxy

/// How new client connections are shared among workers (`ConnectionBalance`).
@Suite struct ConnectionBalanceTests {
  /// Three workers started, each with a mailbox.
  func started(_ count: Int = 3) throws -> (ConnectionBalance, [MailboxReceiver<WorkerMessage>]) {
    let balance = ConnectionBalance(workers: count)
    let loop = try EventLoop()
    let mailboxes = try (0..<count).map { _ in try MailboxReceiver<WorkerMessage>(loop: loop) { _ in } }
    for (id, mailbox) in mailboxes.enumerated() { balance.register(id, mailbox: mailbox.sender) }
    return (balance, mailboxes)
  }

  @Test func aBurstAcceptedByOneWorkerIsSharedEvenly() throws {
    let (balance, mailboxes) = try started()
    var kept = 0
    var handed: [Int] = []
    for _ in 0..<9 {
      if let (target, _) = balance.place(acceptedBy: 0) { handed.append(target) } else { kept += 1 }
    }
    #expect(balance.open == [3, 3, 3])
    #expect(kept == 3)
    #expect(handed.sorted() == [1, 1, 1, 2, 2, 2])
    withExtendedLifetime(mailboxes) {}
  }

  @Test func theAcceptingWorkerKeepsAConnectionOnATie() throws {
    let (balance, mailboxes) = try started(2)
    #expect(balance.place(acceptedBy: 1) == nil)
    #expect(balance.place(acceptedBy: 0) == nil, "0 holds none, 1 holds one: 0 keeps it")
    #expect(balance.open == [1, 1])
    withExtendedLifetime(mailboxes) {}
  }

  @Test func closedConnectionsMakeRoomWhereTheyClosed() throws {
    let (balance, mailboxes) = try started(2)
    for _ in 0..<4 { _ = balance.place(acceptedBy: 0) }
    #expect(balance.open == [2, 2])
    balance.closed(1)
    balance.closed(1)
    #expect(balance.place(acceptedBy: 0)?.worker == 1)
    #expect(balance.open == [2, 1])
    balance.closed(1)
    balance.closed(1)
    #expect(balance.open == [2, 0], "never below zero")
    withExtendedLifetime(mailboxes) {}
  }

  @Test func aWorkerNotStartedOrDrainingIsHandedNothing() throws {
    let balance = ConnectionBalance(workers: 3)
    let loop = try EventLoop()
    let mailbox = try MailboxReceiver<WorkerMessage>(loop: loop) { _ in }
    balance.register(0, mailbox: mailbox.sender)
    #expect(balance.place(acceptedBy: 0) == nil)
    #expect(balance.place(acceptedBy: 0) == nil, "1 and 2 have not started")
    let other = try MailboxReceiver<WorkerMessage>(loop: loop) { _ in }
    balance.register(2, mailbox: other.sender)
    #expect(balance.place(acceptedBy: 0)?.worker == 2)
    balance.withdraw(2)
    #expect(balance.place(acceptedBy: 0) == nil, "2 drains")
    #expect(balance.open == [3, 0, 1])
  }
}
