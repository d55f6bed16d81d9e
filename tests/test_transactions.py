"""The transaction table on its own: no reactor, no session, the time handed in."""

from twisted.trial import unittest

from msrplib._transactions import Transaction, TransactionTable, stand_in_response


def transaction(transaction_id, counted=True):
    return Transaction(transaction_id, None, counted, None, 0)


class TransactionTableTests(unittest.TestCase):
    def setUp(self):
        self.table = TransactionTable()

    def test_only_counted_transactions_are_outstanding(self):
        self.table.open(transaction("a"), 30.0)
        self.table.open(transaction("b", counted=False), 30.0)
        self.assertEqual((len(self.table), self.table.outstanding), (2, 1))
        self.table.close("a")
        self.table.close("b")
        self.assertEqual((len(self.table), self.table.outstanding), (0, 0))

    def test_an_answer_closes_its_transaction_once(self):
        opened = transaction("a")
        self.table.open(opened, 30.0)
        self.assertIs(self.table.close("a"), opened)
        self.assertIsNone(self.table.close("a"))  # a second answer is stray
        self.assertEqual(self.table.outstanding, 0)

    def test_an_answer_to_no_transaction_changes_nothing(self):
        self.table.open(transaction("a"), 30.0)
        self.assertIsNone(self.table.close("unknown"))
        self.assertEqual((len(self.table), self.table.outstanding), (1, 1))

    def test_the_next_deadline_is_the_oldest_open_one(self):
        self.assertIsNone(self.table.next_deadline())
        for number, deadline in enumerate((10.0, 11.0, 12.0)):
            self.table.open(transaction(str(number)), deadline)
        self.table.close("1")  # answered in the middle: the oldest still rules
        self.assertEqual(self.table.next_deadline(), 10.0)
        self.table.close("0")
        self.assertEqual(self.table.next_deadline(), 12.0)  # 11.0 was answered
        self.table.close("2")
        self.assertIsNone(self.table.next_deadline())

    def test_expired_transactions_oldest_first_and_still_open(self):
        for number, deadline in enumerate((10.0, 11.0, 12.0, 13.0)):
            self.table.open(transaction(str(number)), deadline)
        self.table.close("1")
        expired = self.table.expired(12.0)
        self.assertEqual([t.transaction_id for t in expired], ["0", "2"])
        self.assertEqual(len(self.table), 3)  # until their stand-in answers close them
        self.assertEqual(self.table.expired(9.99), [])

    def test_iterating_allows_closing_meanwhile(self):
        for name in "abc":
            self.table.open(transaction(name), 30.0)
        for opened in self.table:
            self.table.close(opened.transaction_id)
        self.assertEqual(len(self.table), 0)

    def test_the_deadlines_do_not_outlive_their_transactions(self):
        for number in range(100):
            self.table.open(transaction(str(number)), float(number))
        for number in reversed(range(100)):
            self.table.close(str(number))
        self.assertEqual(len(self.table._deadlines), 0)


class StandInResponseTests(unittest.TestCase):
    def test_a_counted_transaction_times_out_with_408(self):
        response = stand_in_response(transaction("t1"))
        self.assertEqual((response.transaction_id, response.code), ("t1", 408))

    def test_one_that_asked_for_no_answer_is_taken_as_200(self):
        response = stand_in_response(transaction("t2", counted=False))
        self.assertEqual((response.transaction_id, response.code), ("t2", 200))
